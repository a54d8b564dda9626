import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { downloadToFile, fetchJson } from '../../src/download/download.ts';
import { HttpClient, type HttpOptions } from '../../src/download/http.ts';
import { CODES, CutoverError } from '../../src/errors.ts';
import { makeTestCA, ReleaseServer, type TestCA } from '../helpers/https-server.ts';

/**
 * The throughput floor (source.min_speed / min_speed_time) against a real HTTPS server: a rolling
 * window over the body, timed from the headers, retried within the bounded attempts.
 */
describe('throughput floor', () => {
  let ca: TestCA;
  let server: ReleaseServer;
  let dir: string;
  const artifact = randomBytes(64 << 10);
  const index = Buffer.from(JSON.stringify({ releases: [], pad: 'x'.repeat(4000) }));

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'cutover-speed-'));
    mkdirSync(path.join(dir, 'ca'));
    ca = makeTestCA(path.join(dir, 'ca'));
    server = await new ReleaseServer(ca).start();
    server.files.set('a.bin', artifact);
    server.files.set('index.json', index);
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    server.faults.clear();
    server.hits.length = 0;
  });

  function client(opts: Partial<HttpOptions>): HttpClient {
    return new HttpClient({ caFile: ca.caFile, idleTimeoutMs: 30_000, backoffMs: 10, minSpeed: 2048, minSpeedTimeMs: 500, ...opts });
  }

  async function download(c: HttpClient): Promise<{ error?: CutoverError; dest: string }> {
    const dest = path.join(dir, 'downloads', 'a.bin');
    rmSync(path.dirname(dest), { recursive: true, force: true });
    mkdirSync(path.dirname(dest));
    try {
      await downloadToFile(c, new URL(server.url('a.bin')), dest, { size: artifact.length, signal: AbortSignal.timeout(60_000) });
      return { dest };
    } catch (e) {
      assert.ok(e instanceof CutoverError, String(e));
      return { error: e, dest };
    } finally {
      await c.close();
    }
  }

  test('a steady trickle of the index fails with E_NET_SLOW after the bounded attempts', async () => {
    server.faults.set('index.json', { kind: 'trickle', intervalMs: 50, bytesPerTick: 20 }); // 400 B/s
    const c = client({});
    const err = await fetchJson(c, new URL(server.url('index.json')), 1 << 20, AbortSignal.timeout(60_000), 'release index', 'E_INDEX_INVALID').then(
      () => assert.fail('the trickled index was accepted'),
      (e: unknown) => e,
    );
    await c.close();
    assert.ok(err instanceof CutoverError, String(err));
    assert.equal(err.code, 'E_NET_SLOW');
    assert.equal(CODES[err.code], 4);
    assert.match(err.message, /^download of https:\/\/127\.0\.0\.1:\d+\/index\.json ran at \d+(\.\d)? B\/s, under source\.min_speed 2\.0 KiB\/s for 500ms$/);
    assert.ok(err.hint && /min_speed/.test(err.hint));
    assert.deepEqual(server.hits, ['index.json', 'index.json', 'index.json'], 'retried within the three attempts');
  });

  test('a burst, then silence shorter than idle_timeout: the window forgets the burst', async () => {
    // 32 KiB at once is 64 s of credit at the floor for an average since the start; the rolling
    // window fails it half a second into the silence, long before idle_timeout (30 s).
    server.faults.set('a.bin', { kind: 'stall', after: 32 << 10, ms: 120_000 });
    const { error, dest } = await download(client({}));
    assert.equal(error?.code, 'E_NET_SLOW', error?.message);
    assert.equal(server.hits.length, 3);
    assert.equal(existsSync(dest), false, 'the partial download is removed');
    assert.deepEqual(readdirSync(path.dirname(dest)), []);
  });

  test('a stall shorter than the window, then a burst, passes', async () => {
    server.faults.set('a.bin', { kind: 'stall', after: 1024, ms: 300 });
    const { error, dest } = await download(client({ minSpeedTimeMs: 2000 }));
    assert.equal(error, undefined);
    assert.deepEqual(readFileSync(dest), artifact);
    assert.equal(server.hits.length, 1);
  });

  test('slow but above the floor passes', async () => {
    // 10 KiB/s against a 512 B/s floor, for about 0.8 s: more than a window of 500 ms.
    server.files.set('a.bin', artifact.subarray(0, 8 << 10));
    try {
      server.faults.set('a.bin', { kind: 'trickle', intervalMs: 50, bytesPerTick: 512 });
      const c = client({ minSpeed: 512 });
      const dest = path.join(dir, 'small.bin');
      await downloadToFile(c, new URL(server.url('a.bin')), dest, { size: 8 << 10, signal: AbortSignal.timeout(60_000) });
      await c.close();
      assert.deepEqual(readFileSync(dest), artifact.subarray(0, 8 << 10));
      assert.equal(server.hits.length, 1);
    } finally {
      server.files.set('a.bin', artifact);
    }
  });

  test('minSpeed 0 turns the floor off', async () => {
    // 1000 B/s for about 0.6 s: under a 2 KiB/s floor with a 500 ms window this would fail.
    server.faults.set('index.json', { kind: 'trickle', intervalMs: 20, bytesPerTick: 20 });
    server.files.set('index.json', Buffer.from(JSON.stringify({ releases: [], pad: 'x'.repeat(600) })));
    try {
      const c = client({ minSpeed: 0 });
      const doc = await fetchJson(c, new URL(server.url('index.json')), 1 << 20, AbortSignal.timeout(60_000), 'release index', 'E_INDEX_INVALID');
      await c.close();
      assert.deepEqual((doc as { releases: unknown[] }).releases, []);
      assert.equal(server.hits.length, 1);
    } finally {
      server.files.set('index.json', index);
    }
  });
});
