import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { HealthConfig } from '../../src/config/config.ts';
import { healthGate } from '../../src/health/probe.ts';

/** A real HTTP server on loopback whose /health answer the test sets per request. */
describe('health gate against a real server', () => {
  let server: http.Server;
  let port = 0;
  let answer: (n: number, res: http.ServerResponse) => void = (_n, res) => res.end();
  let hits = 0;
  const sockets = new Set<import('node:stream').Duplex>();
  before(async () => {
    server = http.createServer((_req, res) => answer(hits++, res));
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const cfg = (over: Partial<HealthConfig> = {}): HealthConfig => ({
    url: new URL(`http://127.0.0.1:${port}/health`),
    timeoutMs: 2000,
    intervalMs: 20,
    successes: 3,
    expectVersion: true,
    probeTimeoutMs: 300,
    ...over,
  });
  const json = (status: number, body: object) => (_n: number, res: http.ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const signal = new AbortController().signal;

  test('three consecutive good answers with the right version pass', async () => {
    hits = 0;
    answer = json(200, { version: '1.4.0' });
    const g = await healthGate(cfg(), '1.4.0', { signal });
    assert.equal(g.healthy, true);
    assert.equal(g.probes, 3);
  });

  test('the version may come in an X-App-Version header, with or without v', async () => {
    answer = (_n, res) => res.writeHead(200, { 'x-app-version': 'v1.4.0' }).end('ok');
    assert.equal((await healthGate(cfg(), '1.4.0', { signal })).healthy, true);
  });

  test('the old version answering is unhealthy', async () => {
    answer = json(200, { version: '1.3.0' });
    const g = await healthGate(cfg({ timeoutMs: 300 }), '1.4.0', { signal });
    assert.equal(g.healthy, false);
    assert.match(g.last?.reason ?? '', /reports version "1\.3\.0", expected 1\.4\.0/);
  });

  test('no version reported is unhealthy when expect_version is on, fine when off', async () => {
    answer = (_n, res) => res.writeHead(200).end('ok');
    assert.equal((await healthGate(cfg({ timeoutMs: 300 }), '1.4.0', { signal })).healthy, false);
    assert.equal((await healthGate(cfg({ expectVersion: false }), undefined, { signal })).healthy, true);
  });

  test('5xx is unhealthy', async () => {
    answer = json(500, { version: '1.4.0' });
    const g = await healthGate(cfg({ timeoutMs: 300 }), '1.4.0', { signal });
    assert.equal(g.healthy, false);
    assert.equal(g.last?.reason, 'HTTP 500');
  });

  test('flapping never reaches three in a row', async () => {
    hits = 0;
    answer = (n, res) => json(n % 2 ? 503 : 200, { version: '1.4.0' })(n, res);
    const g = await healthGate(cfg({ timeoutMs: 600 }), '1.4.0', { signal });
    assert.equal(g.healthy, false);
    assert.ok(g.probes >= 4, `probed ${g.probes} times`);
  });

  test('a hanging endpoint times out per probe and fails within the overall deadline', async () => {
    answer = () => {}; // never answers
    const started = Date.now();
    const g = await healthGate(cfg({ timeoutMs: 1000, probeTimeoutMs: 200 }), '1.4.0', { signal });
    assert.equal(g.healthy, false);
    assert.match(g.last?.reason ?? '', /no answer within/);
    assert.ok(g.probes >= 3, `each probe gave up on its own (${g.probes} probes)`);
    assert.ok(Date.now() - started < 3000);
  });

  test('nothing listening is unhealthy', async () => {
    const g = await healthGate(cfg({ url: new URL('http://127.0.0.1:1/health'), timeoutMs: 200 }), '1.4.0', { signal });
    assert.equal(g.healthy, false);
    assert.match(g.last?.reason ?? '', /ECONNREFUSED/);
  });
});
