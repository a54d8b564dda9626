/**
 * `release pack` on real directories: byte-identical output for the same input whatever the
 * files' times and owners, an archive the extractor accepts, and every hostile input the
 * extractor refuses refused here too, by name, with no file left behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { after, before, describe, test } from 'node:test';
import { extractRelease } from '../../src/archive/extract.ts';
import { CutoverError } from '../../src/errors.ts';
import { packRelease } from '../../src/release/pack.ts';

const LONG = `${'deep/'.repeat(25)}a-file-whose-path-is-longer-than-a-hundred-bytes.txt`;

function build(dir: string): void {
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  writeFileSync(path.join(dir, 'bin', 'demo'), '#!/bin/sh\necho demo\n', { mode: 0o775 });
  writeFileSync(path.join(dir, 'README'), 'hello\n', { mode: 0o666 });
  mkdirSync(path.join(dir, 'lib', 'ünïcode'), { recursive: true });
  writeFileSync(path.join(dir, 'lib', 'ünïcode', 'data.json'), '{}\n');
  symlinkSync('../bin/demo', path.join(dir, 'lib', 'demo-link'));
  mkdirSync(path.dirname(path.join(dir, LONG)), { recursive: true });
  writeFileSync(path.join(dir, LONG), 'x'.repeat(5000));
  writeFileSync(path.join(dir, 'release.json'), JSON.stringify({ name: 'demo', schema: 2, migrate: ['bin/demo'] }));
}

/** Every entry of an archive as [path, type, mode, uid, gid, mtime], and whether any header carried atime/ctime. */
async function list(file: string): Promise<{ entries: Array<[string, string, number, number, number, number]>; paxTimes: boolean }> {
  const entries: Array<[string, string, number, number, number, number]> = [];
  let paxTimes = false;
  const p = new Parser({
    onReadEntry: (e: ReadEntry) => {
      entries.push([e.path, e.type, e.mode ?? -1, e.uid ?? -1, e.gid ?? -1, (e.mtime?.getTime() ?? -1) / 1000]);
      if (e.atime || e.ctime) paxTimes = true;
      e.resume();
    },
  });
  await new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
    p.end(readFileSync(file));
  });
  return { entries, paxTimes };
}

const isCode = (code: string, exit: number, match?: RegExp) => (e: unknown) =>
  e instanceof CutoverError && e.code === code && e.exitCode === exit && (!match || match.test(e.message));

describe('release pack', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'cutover-pack-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the same input gives byte-identical archives, whatever the times and owners on disk', async () => {
    const src = path.join(dir, 'build');
    build(src);
    const a = await packRelease({ dir: src, name: 'demo', version: '1.4.0', out: path.join(dir, 'out-a'), fields: {}, mtime: 1_700_000_000 });
    utimesSync(path.join(src, 'README'), new Date(), new Date());
    chownSync(path.join(src, 'bin', 'demo'), 1234, 5678);
    const b = await packRelease({ dir: src, name: 'demo', version: 'v1.4.0', out: path.join(dir, 'out-b'), fields: {}, mtime: 1_700_000_000 });
    assert.deepEqual(readFileSync(a.file), readFileSync(b.file));
    assert.equal(a.sha256, b.sha256);
    assert.equal(path.basename(a.file), 'demo-1.4.0.tar.gz');
    assert.equal(a.size, statSync(a.file).size);
    const { entries, paxTimes } = await list(a.file);
    assert.equal(entries[0]![0], 'release.json', 'release.json first');
    const names = entries.slice(1).map((e) => e[0]);
    assert.deepEqual(
      names,
      [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
      'byte order of the full path',
    );
    assert.ok(names.includes(LONG), 'a path over 100 bytes survives');
    for (const [p, , mode, uid, gid, mtime] of entries) {
      assert.deepEqual([uid, gid, mtime], [0, 0, 1_700_000_000], p);
      if (p === 'bin/demo' || p.endsWith('/')) assert.equal(mode & 0o7777, 0o755, p);
      if (p === 'README') assert.equal(mode & 0o7777, 0o644, p);
    }
    assert.equal(paxTimes, false, 'no atime/ctime');
    const c = await packRelease({ dir: src, name: 'demo', version: '1.4.0', out: path.join(dir, 'out-c'), fields: {}, mtime: 0 });
    assert.notEqual(c.sha256, a.sha256, 'SOURCE_DATE_EPOCH is what the times are');
  });

  test('the extractor accepts it: the tree comes back, release.json merged from the directory and the flags', async () => {
    const src = path.join(dir, 'build');
    const r = await packRelease({ dir: src, name: 'demo', version: '1.4.0', out: path.join(dir, 'out-d'), fields: { upgrade_from: '>=1.3.0' }, mtime: 0 });
    const dest = path.join(dir, 'extracted');
    mkdirSync(dest, { mode: 0o700 });
    const x = await extractRelease(r.file, dest);
    assert.equal(x.bytes, r.unpacked_size);
    assert.deepEqual(JSON.parse(readFileSync(path.join(dest, 'release.json'), 'utf8')), {
      name: 'demo',
      version: '1.4.0',
      schema: 2,
      migrate: ['bin/demo'],
      upgrade_from: '>=1.3.0',
    });
    assert.equal(readlinkSync(path.join(dest, 'lib', 'demo-link')), '../bin/demo');
    assert.equal(readFileSync(path.join(dest, LONG), 'utf8').length, 5000);
    assert.equal(statSync(path.join(dest, 'bin', 'demo')).mode & 0o777, 0o755);
  });

  test('a release.json that disagrees with --name or --version, or has a bad field, is refused', async () => {
    const src = path.join(dir, 'build');
    await assert.rejects(
      packRelease({ dir: src, name: 'other', version: '1.0.0', out: path.join(dir, 'o1'), fields: {}, mtime: 0 }),
      isCode('E_RELEASE_MANIFEST', 5, /--name/),
    );
    await assert.rejects(
      packRelease({ dir: src, name: 'demo', version: '1.0.0', out: path.join(dir, 'o2'), fields: { schema: -1 }, mtime: 0 }),
      isCode('E_RELEASE_MANIFEST', 5, /"schema" -1/),
    );
  });

  // The hostile inputs of the extractor's tests that can exist in a directory (a header-only trick, such as
  // a "../" path or a write through a link, cannot): each refused by name, by the same rules.
  const hostile: Array<[string, (d: string) => void | Promise<void>, RegExp]> = [
    ['a symlink to an absolute path', (d) => symlinkSync('/etc/passwd', path.join(d, 'evil')), /"evil" is a symlink to the absolute path/],
    ['a symlink that climbs out', (d) => symlinkSync('../../etc', path.join(d, 'evil')), /"evil" is a symlink to "\.\.\/\.\.\/etc", outside the release/],
    [
      'a symlink that escapes through another symlink',
      (d) => {
        mkdirSync(path.join(d, 'd'));
        symlinkSync('..', path.join(d, 'd', 'up'));
        symlinkSync('d/up/../canary', path.join(d, 'esc'));
      },
      /"esc"/,
    ],
    [
      'a symlink loop',
      (d) => {
        symlinkSync('y', path.join(d, 'x'));
        symlinkSync('x', path.join(d, 'y'));
      },
      /loop/,
    ],
    [
      'a path that differs from a symlink only in case',
      (d) => {
        mkdirSync(path.join(d, 'sub'));
        symlinkSync('sub', path.join(d, 'Link'));
        mkdirSync(path.join(d, 'link'));
        writeFileSync(path.join(d, 'link', 'x'), 'x');
      },
      /case/,
    ],
    ['a hardlink', (d) => linkSync(path.join(d, 'a'), path.join(d, 'b')), /"a" is a hardlink/],
    ['a FIFO', (d) => void spawnSync('mkfifo', [path.join(d, 'pipe')]), /"pipe" is a FIFO/],
    ['a character device', (d) => void spawnSync('mknod', [path.join(d, 'null'), 'c', '1', '3']), /"null" is a character device/],
    ['a block device', (d) => void spawnSync('mknod', [path.join(d, 'sda'), 'b', '8', '0']), /"sda" is a block device/],
    // A socket file stays after its creator exits (bind without unlink).
    [
      'a socket',
      (d) => void spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(d, 'sock')]),
      /"sock" is a socket/,
    ],
    ['a setuid file', (d) => chmodSync(path.join(d, 'a'), 0o4755), /"a" has setuid\/setgid\/sticky mode 04755/],
    ['a setgid file', (d) => chmodSync(path.join(d, 'a'), 0o2755), /"a" has setuid\/setgid\/sticky mode 02755/],
    ['a backslash in a name', (d) => writeFileSync(path.join(d, 'bad\\name'), ''), /has a backslash in its path/],
  ];
  for (const [what, make, match] of hostile) {
    test(`refuses ${what} (E_ARCHIVE_UNSAFE, exit 5), leaving no file`, async (t) => {
      if (process.getuid?.() !== 0 && /device/.test(what)) return t.skip('mknod needs root');
      const d = mkdtempSync(path.join(dir, 'hostile-'));
      writeFileSync(path.join(d, 'a'), 'a');
      await make(d);
      const out = path.join(d, '..', `${path.basename(d)}-out`);
      await assert.rejects(packRelease({ dir: d, name: 'demo', version: '1.0.0', out, fields: {}, mtime: 0 }), isCode('E_ARCHIVE_UNSAFE', 5, match));
      assert.ok(!existsSync(out) || readdirSync(out).length === 0, 'no archive written');
    });
  }
});
