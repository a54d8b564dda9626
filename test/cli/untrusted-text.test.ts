import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { lastLine, World } from '../helpers/world.ts';

const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const HOSTILE = '1.0.0\u001b]0;pwned\u0007\ndemo: E_OK: all good\u202e';

/**
 * A /health answer whose version holds an OSC title sequence, a newline forging a final line and
 * a bidi override: what reaches the terminal and --json is escaped, and the last line is ours.
 */
describe('text from outside never reaches the terminal or --json raw', () => {
  let w: World;
  let server: http.Server;
  let mode: 'body' | 'header' = 'body';
  before(async () => {
    server = http.createServer((_req, res) => {
      // A header may carry C1 bytes (0x80-0x9f, read as latin1): \x9b is a one-byte CSI.
      if (mode === 'header') res.writeHead(200, { 'x-app-version': '1.0.0\x9b2J\x9b0m' }).end('ok');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ version: HOSTILE }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    w = await World.create();
    await w.publish('1.0.0');
    assert.equal((await w.run(['update'])).code, 0);
    await w.publish('1.1.0');
    const port = (server.address() as AddressInfo).port;
    w.writeConfig({
      top: `[service]\nunits = ["demo.service"]\n\n[health]\nurl = "http://127.0.0.1:${port}/health"\ntimeout = "1s"\nprobe_timeout = "1s"\ninterval = "100ms"\n`,
    });
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await w?.close();
  });

  for (const m of ['body', 'header'] as const) {
    test(`a hostile version in the /health ${m === 'body' ? 'JSON body' : 'X-App-Version header'} is escaped in the error line and in --json`, async () => {
      mode = m;
      const before = w.snapshot();
      const r = await w.run(['update', '--version', '1.1.0', '--json']);
      assert.equal(r.code, 3, r.stderr);
      assert.doesNotMatch(r.stderr.replace(/\n/g, ''), RAW, 'no raw control character on stderr');
      const shown = m === 'body' ? /"1\.0\.0\\x1b\]0;pwned\\x07\\ndemo: E_OK: all good\\u202e"/ : /"1\.0\.0\\x9b2J\\x9b0m"/;
      assert.match(lastLine(r.stderr), /^demo: E_PREFLIGHT: the current release v1\.0\.0 is not healthy before the update: answer reports version "/);
      assert.match(lastLine(r.stderr), shown);
      assert.doesNotMatch(r.stderr, /^demo: E_OK/m, 'the forged line is not a line');
      const doc = JSON.parse(lastLine(r.stdout)) as { error: { message: string; details: { reason: string } } };
      assert.doesNotMatch(doc.error.message, RAW, 'nothing raw after JSON decoding');
      assert.doesNotMatch(doc.error.details.reason, RAW);
      assert.match(doc.error.message, shown);
      assert.deepEqual(w.snapshot(), before);
    });
  }
});
