import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { entriesOf } from '../helpers/cli.ts';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { makeRelease, makeTar, makeTarGz, releaseEntries } from '../helpers/tarball.ts';
import { World } from '../helpers/world.ts';

/**
 * Every bad input must leave current, releases/ and runtime/ exactly as they were, no staging
 * or download behind, nothing written outside the root; and exit with its documented code.
 */
describe('hostile input changes nothing', () => {
  let w: World;
  let good: string[];
  let outside: string[];
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0');
    const r = await w.run(['update']);
    assert.equal(r.code, 0, r.stderr);
    w.mkdirRuntime();
    good = w.snapshot();
    outside = w.outsideRoot();
  });
  after(async () => {
    await w.close();
  });
  beforeEach(() => {
    w.clearFaults();
  });

  async function expectRefused(args: string[], exit: number, code: RegExp): Promise<string> {
    const r = await w.run(args);
    assert.equal(r.code, exit, `expected exit ${exit}, got ${r.code}: ${r.stderr}`);
    const line = r.stderr.trim().split('\n').pop() ?? '';
    assert.match(line, code);
    assert.match(line, /^demo: E_[A-Z_]+: .+; .+/, 'one line: code, what is wrong; what to do');
    assert.deepEqual(w.snapshot(), good, 'current, releases/ and runtime/ unchanged');
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');
    for (const d of ['staging', 'downloads', 'trash']) {
      assert.deepEqual(entriesOf(path.join(w.root, '.cutover', d)), [], `.cutover/${d} left behind`);
    }
    assert.deepEqual(w.outsideRoot(), outside, 'nothing written outside the root');
    return line;
  }

  describe('signatures and policy (exit 3)', () => {
    test('a tampered artifact (index digest of the real one)', async () => {
      const real = await w.publish('1.1.0');
      const evil = Buffer.from(real);
      evil[evil.length - 1] = (evil[evil.length - 1] ?? 0) ^ 1;
      w.fault('demo-1.1.0.tar.gz', { kind: 'replace', body: evil });
      await expectRefused(['update', '--version', '1.1.0'], 3, /E_DIGEST_MISMATCH/);
    });

    test('a tampered stream that is itself a valid release: extracted, then refused at the last byte, staging gone', async () => {
      // gzip level 0 stores its input, so an archive with one content byte changed has the
      // same size: the index's size passes and only the digest can tell.
      const entries = (marker: string) => releaseEntries({ name: 'demo', version: '1.1.2', files: { 'bin/demo': `#!/bin/sh\necho ${marker}\n` } });
      const stored = (marker: string) => gzipSync(makeTar(entries(marker)), { level: 0 });
      const real = stored('good');
      await w.publish('1.1.2', { archive: real });
      const evil = stored('evil');
      assert.equal(evil.length, real.length);
      w.fault('demo-1.1.2.tar.gz', { kind: 'replace', body: evil });
      const line = await expectRefused(['update', '--version', '1.1.2'], 3, /E_DIGEST_MISMATCH/);
      assert.match(line, /the signed digest is/);
    });

    test('a bundle signed for another file', async () => {
      const other = makeRelease({ name: 'demo', version: '1.1.1', files: { x: 'other' } });
      const bundle = await w.sigstore.sign(other, {
        identity: 'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v1.1.1',
        issuer: 'https://token.actions.githubusercontent.com',
      });
      await w.publish('1.1.1', { bundle });
      await expectRefused(['update', '--version', '1.1.1'], 3, /E_DIGEST_MISMATCH|E_SIG_INVALID/);
    });

    test('the wrong identity (another tag of the same workflow)', async () => {
      await w.publish('1.1.2', { sign: { identity: 'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v1.1.1' } });
      await expectRefused(['update', '--version', '1.1.2'], 3, /E_SIG_IDENTITY/);
    });

    test('an identity that only starts with the expected one', async () => {
      await w.publish('1.1.3', { sign: { identity: 'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v1.1.3-evil' } });
      await expectRefused(['update', '--version', '1.1.3'], 3, /E_SIG_IDENTITY/);
    });

    test('the wrong issuer', async () => {
      await w.publish('1.1.4', { sign: { issuer: 'https://accounts.example.com' } });
      await expectRefused(['update', '--version', '1.1.4'], 3, /E_SIG_ISSUER/);
    });

    test('a certificate from an untrusted CA', async () => {
      await w.publish('1.1.5', { untrusted: true });
      await expectRefused(['update', '--version', '1.1.5'], 3, /E_SIG_UNTRUSTED/);
    });

    test('no transparency-log entry while one is required', async () => {
      await w.publish('1.1.6', { sign: { tlog: false } });
      await expectRefused(['update', '--version', '1.1.6'], 3, /E_SIG_UNTRUSTED/);
    });
  });

  describe('network (exit 4)', () => {
    test('a truncated download', async () => {
      await w.publish('1.2.0');
      w.fault('demo-1.2.0.tar.gz', { kind: 'truncate', after: 100 });
      await expectRefused(['update', '--version', '1.2.0'], 4, /E_NET/);
    });

    test('an oversized download stops at the first extra byte', async () => {
      await w.publish('1.2.1');
      w.fault('demo-1.2.1.tar.gz', { kind: 'extra', bytes: 10 << 20 });
      await expectRefused(['update', '--version', '1.2.1'], 4, /E_NET_SIZE/);
    });

    test('a server that goes silent', async () => {
      await w.publish('1.2.2');
      w.fault('demo-1.2.2.tar.gz', { kind: 'hang' });
      await expectRefused(['update', '--version', '1.2.2'], 4, /E_NET_TIMEOUT/);
    });

    test('a trickling server hits the overall deadline', async () => {
      await w.publish('1.2.3');
      w.writeConfig({ source: 'timeout = "3s"\nidle_timeout = "2s"' });
      try {
        w.fault('demo-1.2.3.tar.gz', { kind: 'trickle', intervalMs: 100 });
        await expectRefused(['update', '--version', '1.2.3'], 4, /E_NET_TIMEOUT/);
      } finally {
        w.writeConfig();
      }
    });

    test('a trickle under source.min_speed fails with E_NET_SLOW within the bounded attempts', async () => {
      // Incompressible, so the archive is ~16 KiB: half a minute at the trickle's 500 B/s.
      await w.publish('1.2.6', { files: { 'bin/demo': randomBytes(12 << 10).toString('base64') } });
      w.writeConfig({ source: 'timeout = "60s"\nidle_timeout = "10s"\nmin_speed = "2KiB"\nmin_speed_time = "1s"' });
      try {
        w.fault('demo-1.2.6.tar.gz', { kind: 'trickle', intervalMs: 100, bytesPerTick: 50 });
        const line = await expectRefused(['update', '--version', '1.2.6'], 4, /E_NET_SLOW/);
        assert.match(
          line,
          /^demo: E_NET_SLOW: download of https:\/\/127\.0\.0\.1:\d+\/demo\/demo-1\.2\.6\.tar\.gz ran at [\d.]+ B\/s, under source\.min_speed 2\.0 KiB\/s for 1\.0s; .*min_speed/,
        );
        assert.equal(w.server.hits.filter((h) => h === 'demo/demo-1.2.6.tar.gz').length, 3, 'one request per attempt, three attempts');
      } finally {
        w.writeConfig();
      }
    });

    test('min_speed = "0" turns the floor off', async () => {
      await w.publish('1.0.2');
      // 150 B/s for about a second: the floor below would have failed it after 500 ms.
      w.writeConfig({ source: 'timeout = "60s"\nidle_timeout = "10s"\nmin_speed = "0"\nmin_speed_time = "500ms"' });
      try {
        w.fault('demo-1.0.2.tar.gz', { kind: 'trickle', intervalMs: 100, bytesPerTick: 15 });
        const r = await w.run(['update', '--version', '1.0.2']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.2');
        assert.equal(w.server.hits.filter((h) => h === 'demo/demo-1.0.2.tar.gz').length, 1);
        assert.equal((await w.run(['rollback'])).code, 0);
        good = w.snapshot();
      } finally {
        w.writeConfig();
      }
    });

    test('a redirect to http is refused', async () => {
      await w.publish('1.2.4');
      w.fault('demo-1.2.4.tar.gz', { kind: 'redirect', to: `http://127.0.0.1:${w.server.port}/demo/demo-1.2.4.tar.gz` });
      await expectRefused(['update', '--version', '1.2.4'], 4, /E_NET_REDIRECT/);
    });

    test('HTTP errors after bounded retries', async () => {
      await w.publish('1.2.5');
      w.fault('demo-1.2.5.tar.gz', { kind: 'status', status: 503 });
      await expectRefused(['update', '--version', '1.2.5'], 4, /E_NET_STATUS: release server answered HTTP 503/);
      assert.equal(w.server.hits.filter((h) => h === 'demo/demo-1.2.5.tar.gz').length, 3);
    });

    test('a transient 503 is retried and the update succeeds', async () => {
      await w.publish('1.0.1');
      w.fault('demo-1.0.1.tar.gz', { kind: 'status', status: 503, times: 1 });
      const r = await w.run(['update', '--version', '1.0.1']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await w.run(['rollback'])).code, 0);
      good = w.snapshot();
    });
  });

  describe('archives (exit 5), signed and delivered intact', () => {
    const manifest = { path: 'release.json', body: '{"name":"demo","version":"1.3.0"}' };
    const hostile: Array<[string, Parameters<typeof makeTarGz>[0]]> = [
      ['a path with ..', [manifest, { path: '../escaped', body: 'x' }]],
      ['an absolute path', [manifest, { path: '/etc/cutover-evil', body: 'x' }]],
      ['a symlink pointing outside', [manifest, { path: 'link', type: 'symlink', linkpath: '../../..' }]],
      ['a hardlink', [manifest, { path: 'hl', type: 'hardlink', linkpath: 'release.json' }]],
      ['a device file', [manifest, { path: 'dev', type: 'chardev' }]],
      ['a FIFO', [manifest, { path: 'fifo', type: 'fifo' }]],
      ['a setuid file', [manifest, { path: 'suid', body: 'x', mode: 0o4755 }]],
      ['a world-writable file', [manifest, { path: 'ww', body: 'x', mode: 0o666 }]],
      ['foreign ownership', [{ path: 'release.json', body: '{"name":"demo","version":"1.3.0"}', uid: 1001 }]],
    ];
    for (const [name, entries] of hostile) {
      test(name, async () => {
        await w.publish('1.3.0', { archive: makeTarGz(entries) });
        await expectRefused(['update', '--version', '1.3.0'], 5, /E_ARCHIVE_UNSAFE/);
      });
    }

    test('a corrupt gzip stream', async () => {
      const a = makeRelease({ name: 'demo', version: '1.3.0' });
      await w.publish('1.3.0', { archive: a.subarray(0, a.length - 20) });
      await expectRefused(['update', '--version', '1.3.0'], 5, /E_ARCHIVE_CORRUPT/);
    });

    test('a release.json naming another app', async () => {
      await w.publish('1.3.0', { archive: makeRelease({ name: 'other', version: '1.3.0' }) });
      await expectRefused(['update', '--version', '1.3.0'], 5, /E_RELEASE_MANIFEST/);
    });

    test('a release.json with another version', async () => {
      await w.publish('1.3.0', { archive: makeRelease({ name: 'demo', version: '1.2.9' }) });
      await expectRefused(['update', '--version', '1.3.0'], 5, /E_RELEASE_MANIFEST/);
    });

    test('no release.json at all', async () => {
      await w.publish('1.3.0', { archive: makeTarGz([{ path: 'bin/demo', body: 'x' }]) });
      await expectRefused(['update', '--version', '1.3.0'], 5, /E_RELEASE_MANIFEST/);
    });
  });

  test('after all that, a good update still works', async () => {
    await w.publish('1.4.0', { files: { 'bin/demo': 'ok' } });
    const r = await w.run(['update', '--version', '1.4.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.4.0');
  });
});
