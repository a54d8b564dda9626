import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { extractRelease, type ExtractOptions } from '../../src/archive/extract.ts';
import { CutoverError, type ErrorCode } from '../../src/errors.ts';
import { BLOCK, entryBlocks, gzip, makeRelease, makeTar, makeTarGz, makeZeroBomb, releaseEntries, type TarEntry } from '../helpers/tarball.ts';

// ---- a sandbox: <tmp>/cutover-extract-*/{canary/, dest/, release.tar.gz} ----

interface Box {
  parent: string;
  dest: string;
  canary: string;
  archive: string;
}

async function sandbox(archive: Buffer): Promise<Box> {
  const parent = await mkdtemp(path.join(tmpdir(), 'cutover-extract-'));
  const canary = path.join(parent, 'canary');
  await mkdir(canary);
  await writeFile(path.join(canary, 'keep.txt'), 'canary\n');
  const dest = path.join(parent, 'dest');
  await mkdir(dest, { mode: 0o700 });
  const file = path.join(parent, 'release.tar.gz');
  await writeFile(file, archive);
  return { parent, dest, canary, archive: file };
}

/** Every path under `dir` (except `skip`) with its type, mode, size, mtime and link target. */
async function snapshot(dir: string, skip?: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = path.join(d, name);
      if (p === skip) continue;
      const st = await lstat(p);
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? `l>${await readlink(p)}` : st.isFile() ? 'f' : '?';
      out[path.relative(dir, p)] = `${kind} ${(st.mode & 0o7777).toString(8)} ${st.size} ${st.mtimeMs}`;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

/** Descriptors this process still holds on anything inside `dir`. */
function openFdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {
      // The descriptor readdir itself used is gone by now.
    }
  }
  return out;
}

/** Run, expect `code`, and check the state after the failure. */
async function expectRefused(archive: Buffer, code: ErrorCode, opts: { match?: RegExp; extract?: ExtractOptions; hint?: RegExp } = {}): Promise<void> {
  const box = await sandbox(archive);
  try {
    const before = await snapshot(box.parent, box.dest);
    const err: unknown = await extractRelease(box.archive, box.dest, opts.extract).then(
      (r) => assert.fail(`expected ${code}, extraction succeeded: ${JSON.stringify(r)}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CutoverError, `expected CutoverError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(err.hint, 'every error carries a hint');
    if (opts.match) assert.match(err.message, opts.match);
    if (opts.hint) assert.match(err.hint, opts.hint);
    // (c) settled: nothing inside the sandbox is still open, and the staging tree stops changing.
    assert.deepEqual(openFdsUnder(box.dest), []);
    const settled = await snapshot(box.dest);
    await sleep(30);
    assert.deepEqual(await snapshot(box.dest), settled, 'no write after the promise settled');
    // (b) nothing outside destDir was created or touched.
    assert.deepEqual(await snapshot(box.parent, box.dest), before);
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
}

async function extractOk(archive: Buffer, opts?: ExtractOptions) {
  const box = await sandbox(archive);
  const before = await snapshot(box.parent, box.dest);
  const result = await extractRelease(box.archive, box.dest, opts);
  assert.deepEqual(openFdsUnder(box.dest), []);
  assert.deepEqual(await snapshot(box.parent, box.dest), before);
  return { box, result, cleanup: () => rm(box.parent, { recursive: true, force: true }) };
}

const base = (): TarEntry[] => releaseEntries({ name: 'demo', version: '1.4.0' });
const withBase = (...extra: TarEntry[]): Buffer => makeTarGz([...base(), ...extra]);

// ---- happy paths ----

test('a plain release unpacks with contents, modes and mtimes', async () => {
  const archive = makeRelease({
    name: 'demo',
    version: '1.4.0',
    files: { 'bin/demo': '#!/bin/sh\necho hi\n', 'share/doc/README': 'hello\n', empty: '' },
  });
  const { box, result, cleanup } = await extractOk(archive);
  try {
    assert.deepEqual(result, { entries: 7, files: 4, bytes: result.bytes, stripped: null, diskBytes: 6 * 4096 }); // 3 non-empty files, 3 directories
    assert.ok(result.bytes > 0);
    const manifest = JSON.parse(await readFile(path.join(box.dest, 'release.json'), 'utf8'));
    assert.deepEqual(manifest, { name: 'demo', version: '1.4.0' });
    assert.equal(await readFile(path.join(box.dest, 'share/doc/README'), 'utf8'), 'hello\n');
    const bin = await stat(path.join(box.dest, 'bin/demo'));
    assert.equal(bin.mode & 0o7777, 0o755, 'exec bit kept');
    assert.equal((await stat(path.join(box.dest, 'share/doc/README'))).mode & 0o7777, 0o644);
    assert.equal((await stat(path.join(box.dest, 'share'))).mode & 0o7777, 0o755);
    assert.equal((await stat(path.join(box.dest, 'empty'))).size, 0);
    assert.equal(bin.mtimeMs, 1_700_000_000_000, 'file mtime from the archive');
    assert.equal((await stat(path.join(box.dest, 'share'))).mtimeMs, 1_700_000_000_000, 'dir mtime from the archive');
    assert.equal(bin.uid, process.getuid?.(), 'owned by us, never the archive');
  } finally {
    await cleanup();
  }
});

test('a single top-level directory holding release.json is stripped', async () => {
  const archive = makeRelease({ name: 'demo', version: '1.4.0', topDir: 'demo-1.4.0', files: { 'bin/demo': '#!/bin/sh\n' } });
  const { box, result, cleanup } = await extractOk(archive);
  try {
    assert.equal(result.stripped, 'demo-1.4.0');
    assert.deepEqual((await readdir(box.dest)).sort(), ['bin', 'release.json']);
    assert.equal((await stat(path.join(box.dest, 'bin/demo'))).mode & 0o777, 0o755);
  } finally {
    await cleanup();
  }
});

test('a top directory that contains a directory of the same name strips correctly', async () => {
  const archive = makeTarGz([
    ...releaseEntries({ name: 'demo', version: '1', topDir: 'app' }),
    { path: 'app/app/', type: 'dir' },
    { path: 'app/app/x', body: 'x' },
  ]);
  const { box, result, cleanup } = await extractOk(archive);
  try {
    assert.equal(result.stripped, 'app');
    assert.deepEqual((await readdir(box.dest)).sort(), ['app', 'release.json']);
    assert.equal(await readFile(path.join(box.dest, 'app/x'), 'utf8'), 'x');
  } finally {
    await cleanup();
  }
});

test('no stripping without release.json inside the top dir, or with two top-level entries', async () => {
  for (const entries of [
    [
      { path: 'only/', type: 'dir' as const },
      { path: 'only/file', body: 'x' },
    ],
    [...releaseEntries({ name: 'demo', version: '1', topDir: 'a' }), { path: 'b', body: 'x' }],
  ]) {
    const { box, result, cleanup } = await extractOk(makeTarGz(entries));
    try {
      assert.equal(result.stripped, null);
      assert.ok((await readdir(box.dest)).length >= 1);
    } finally {
      await cleanup();
    }
  }
});

test('archives made by GNU tar (./ prefix, GNU long names) unpack', async (t) => {
  const src = await mkdtemp(path.join(tmpdir(), 'cutover-gnutar-'));
  try {
    await writeFile(path.join(src, 'release.json'), '{"name":"demo","version":"1.4.0"}');
    const deep = path.join(src, 'lib', 'a'.repeat(120));
    await mkdir(deep, { recursive: true });
    await writeFile(path.join(deep, 'b'.repeat(120)), 'long');
    await mkdir(path.join(src, 'bin'));
    await writeFile(path.join(src, 'bin', 'demo'), '#!/bin/sh\n');
    fs.chmodSync(path.join(src, 'bin', 'demo'), 0o755);
    fs.symlinkSync('demo', path.join(src, 'bin', 'demo-link'));
    fs.chmodSync(src, 0o755);
    const out = path.join(src, '..', `${path.basename(src)}.tar.gz`);
    try {
      execFileSync('tar', ['--owner=0', '--group=0', '--numeric-owner', '-czf', out, '-C', src, '.']);
    } catch {
      t.skip('GNU tar not available');
      return;
    }
    const { box, result, cleanup } = await extractOk(fs.readFileSync(out));
    fs.rmSync(out);
    try {
      assert.equal(result.stripped, null);
      assert.equal(await readFile(path.join(box.dest, 'lib', 'a'.repeat(120), 'b'.repeat(120)), 'utf8'), 'long');
      assert.equal(await readlink(path.join(box.dest, 'bin/demo-link')), 'demo');
      assert.equal((await stat(path.join(box.dest, 'bin/demo'))).mode & 0o777, 0o755);
    } finally {
      await cleanup();
    }
  } finally {
    await rm(src, { recursive: true, force: true });
  }
});

test('symlinks that stay inside the release are kept as they are', async () => {
  const archive = withBase(
    { path: 'lib/', type: 'dir' },
    { path: 'lib/v1/', type: 'dir' },
    { path: 'lib/v1/x', body: 'x' },
    { path: 'lib/current', type: 'symlink', linkpath: 'v1' },
    { path: 'lib/up', type: 'symlink', linkpath: '..' },
    { path: 'top', type: 'symlink', linkpath: 'lib/current/x' },
    { path: 'dangling', type: 'symlink', linkpath: 'not/there' },
  );
  const { box, cleanup } = await extractOk(archive);
  try {
    assert.equal(await readlink(path.join(box.dest, 'lib/current')), 'v1');
    assert.equal(await readlink(path.join(box.dest, 'lib/up')), '..');
    assert.equal(await readFile(path.join(box.dest, 'top'), 'utf8'), 'x');
    assert.equal(await readlink(path.join(box.dest, 'dangling')), 'not/there');
  } finally {
    await cleanup();
  }
});

test('directory modes are masked to 0755 and keep owner access; archive owner is never applied', async () => {
  const archive = withBase(
    { path: 'ro/', type: 'dir', mode: 0o555 },
    { path: 'ro/file', body: 'x', mode: 0o444 },
    { path: 'private/', type: 'dir', mode: 0o700 },
    { path: 'tool', body: '#!', mode: 0o750 },
  );
  const { box, cleanup } = await extractOk(archive);
  try {
    assert.equal((await stat(path.join(box.dest, 'ro'))).mode & 0o7777, 0o755);
    assert.equal((await stat(path.join(box.dest, 'ro/file'))).mode & 0o7777, 0o444);
    assert.equal((await stat(path.join(box.dest, 'private'))).mode & 0o7777, 0o700);
    assert.equal((await stat(path.join(box.dest, 'tool'))).mode & 0o7777, 0o750);
  } finally {
    await cleanup();
  }
});

test('a repeated file path (same type) is overwritten by the later entry, like tar', async () => {
  const { box, result, cleanup } = await extractOk(withBase({ path: 'a', body: 'first' }, { path: 'a', body: 'second!' }));
  try {
    assert.equal(await readFile(path.join(box.dest, 'a'), 'utf8'), 'second!');
    assert.equal(result.files, 3);
  } finally {
    await cleanup();
  }
});

test('many files and a large one round-trip byte for byte', async () => {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 300; i++) files[`d${i % 7}/f${i}`] = Buffer.from(`file ${i}\n`.repeat(i));
  const big = Buffer.alloc(5 * 1024 * 1024 + 123);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  files['big.bin'] = big;
  const { box, result, cleanup } = await extractOk(makeRelease({ name: 'demo', version: '1', files }));
  try {
    assert.equal(result.files, 302);
    for (const [rel, body] of Object.entries(files)) assert.ok((await readFile(path.join(box.dest, rel))).equals(body), rel);
  } finally {
    await cleanup();
  }
});

// ---- hostile paths ----

test('"../" path is refused', () =>
  expectRefused(withBase({ path: '../canary/evil', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /"\.\.\/canary\/evil".*"\.\."/ }));

test('a ".." segment in the middle is refused', () =>
  expectRefused(withBase({ path: 'a/../../canary/evil', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /a\/\.\.\/\.\.\/canary/ }));

test('an absolute path is refused, not stripped', async () => {
  // The absolute path points into this test's own canary, so the snapshot proves nothing landed.
  const probe = await mkdtemp(path.join(tmpdir(), 'cutover-abs-'));
  try {
    await expectRefused(withBase({ path: `${probe}/evil`, body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /absolute path/ });
    await expectRefused(withBase({ path: '/etc/cutover-test-evil', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /absolute/ });
    assert.deepEqual(await readdir(probe), []);
    assert.equal(fs.existsSync('/etc/cutover-test-evil'), false);
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
});

test('a pax path override with ".." is refused', () =>
  expectRefused(withBase({ path: 'innocent', body: 'x', pax: { path: '../canary/evil' } }), 'E_ARCHIVE_UNSAFE', { match: /canary\/evil/ }));

test('a GNU long-name header with ".." is refused', () =>
  expectRefused(withBase({ path: '././@LongLink', typeflag: 'L', body: '../canary/evil\0' }, { path: 'innocent', body: 'x' }), 'E_ARCHIVE_UNSAFE', {
    match: /canary\/evil/,
  }));

test('a NUL byte in a pax path or GNU long name is refused (node-tar would cut the path there)', async () => {
  await expectRefused(withBase({ path: 'x', body: 'x', pax: { path: 'ok\0/../../canary/evil' } }), 'E_ARCHIVE_UNSAFE', { match: /"ok".*NUL/ });
  await expectRefused(
    withBase({ path: '././@LongLink', typeflag: 'L', body: 'ok\0/../../canary/evil\0' }, { path: 'innocent', body: 'x' }),
    'E_ARCHIVE_UNSAFE',
    { match: /NUL/ },
  );
});

test('a backslash path trick is refused', () => expectRefused(withBase({ path: '..\\canary\\evil', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /backslash/ }));

test('a non-directory entry for the release root itself is refused', () =>
  expectRefused(withBase({ path: './', type: 'symlink', linkpath: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /release root/ }));

// ---- hostile symlinks ----

test('a symlink to an absolute path is refused', () =>
  expectRefused(withBase({ path: 'etc', type: 'symlink', linkpath: '/etc' }), 'E_ARCHIVE_UNSAFE', { match: /"etc".*absolute/ }));

test('a relative symlink that climbs out of the release is refused', async () => {
  await expectRefused(withBase({ path: 'out', type: 'symlink', linkpath: '../canary' }), 'E_ARCHIVE_UNSAFE', { match: /"out".*outside/ });
  await expectRefused(withBase({ path: 'sub/out', type: 'symlink', linkpath: '../../canary' }), 'E_ARCHIVE_UNSAFE');
  await expectRefused(withBase({ path: 'up', type: 'symlink', linkpath: '..' }), 'E_ARCHIVE_UNSAFE');
});

test('a symlink that escapes through another symlink is refused', () =>
  expectRefused(withBase({ path: 'd/up', type: 'symlink', linkpath: '..' }, { path: 'esc', type: 'symlink', linkpath: 'd/up/../canary' }), 'E_ARCHIVE_UNSAFE', {
    match: /"esc"/,
  }));

test('a symlink that only escapes once the top directory is stripped is refused', () =>
  expectRefused(
    makeTarGz([...releaseEntries({ name: 'demo', version: '1', topDir: 'demo-1' }), { path: 'demo-1/m', type: 'symlink', linkpath: '../demo-1/release.json' }]),
    'E_ARCHIVE_UNSAFE',
    { match: /demo-1\/m/ },
  ));

test('a symlink loop is refused', () =>
  expectRefused(withBase({ path: 'a', type: 'symlink', linkpath: 'b' }, { path: 'b', type: 'symlink', linkpath: 'a' }), 'E_ARCHIVE_UNSAFE', {
    match: /loop/,
  }));

test('symlink to an absolute dir, then a write through it, is refused and the target untouched', async () => {
  const probe = await mkdtemp(path.join(tmpdir(), 'cutover-probe-'));
  try {
    await expectRefused(withBase({ path: 'a', type: 'symlink', linkpath: probe }, { path: 'a/file', body: 'pwned' }), 'E_ARCHIVE_UNSAFE');
    assert.deepEqual(await readdir(probe), []);
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
});

test('symlink to "..", then a write through it, is refused', () =>
  expectRefused(withBase({ path: 'a', type: 'symlink', linkpath: '..' }, { path: 'a/x', body: 'pwned' }), 'E_ARCHIVE_UNSAFE'));

test('a write through an allowed in-tree symlink is refused', async () => {
  await expectRefused(
    withBase({ path: 'sub/', type: 'dir' }, { path: 'link', type: 'symlink', linkpath: 'sub' }, { path: 'link/evil', body: 'x' }),
    'E_ARCHIVE_UNSAFE',
    { match: /"link\/evil".*through the symlink "link"/ },
  );
  await expectRefused(withBase({ path: 'sub/up', type: 'symlink', linkpath: '..' }, { path: 'sub/up/x', body: 'x' }), 'E_ARCHIVE_UNSAFE', {
    match: /through the symlink "sub\/up"/,
  });
  await expectRefused(
    withBase({ path: 'sub/', type: 'dir' }, { path: 'link', type: 'symlink', linkpath: 'sub' }, { path: 'link/deeper/', type: 'dir' }),
    'E_ARCHIVE_UNSAFE',
  );
});

test('a path that differs from a symlink only in case is refused (case-insensitive filesystems)', () =>
  expectRefused(
    withBase({ path: 'sub/', type: 'dir' }, { path: 'Link', type: 'symlink', linkpath: 'sub' }, { path: 'link/x', body: 'x' }),
    'E_ARCHIVE_UNSAFE',
    { match: /case/ },
  ));

// ---- hostile types, modes, owners ----

test('every hardlink is refused, even one inside the tree', () =>
  expectRefused(withBase({ path: 'h', type: 'hardlink', linkpath: 'release.json' }), 'E_ARCHIVE_UNSAFE', { match: /"h" is a hardlink/, hint: /hard/ }));

test('a character device is refused', () =>
  expectRefused(withBase({ path: 'null', type: 'chardev' }), 'E_ARCHIVE_UNSAFE', { match: /"null" is a character device/ }));

test('a block device is refused', () => expectRefused(withBase({ path: 'sda', type: 'blockdev' }), 'E_ARCHIVE_UNSAFE', { match: /"sda" is a block device/ }));

test('a FIFO is refused', () => expectRefused(withBase({ path: 'pipe', type: 'fifo' }), 'E_ARCHIVE_UNSAFE', { match: /FIFO/ }));

test('unknown and sparse entry types are refused, not skipped', async () => {
  await expectRefused(withBase({ path: 'sparse', typeflag: 'S', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /"sparse".*unsupported/ });
  await expectRefused(withBase({ path: 'weird', typeflag: 'Z' }), 'E_ARCHIVE_UNSAFE', { match: /"weird"/ });
  await expectRefused(withBase({ path: 'old', typeflag: '7', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /ContiguousFile/ });
});

test('setuid, setgid and sticky bits are refused', async () => {
  await expectRefused(withBase({ path: 'su', body: 'x', mode: 0o4755 }), 'E_ARCHIVE_UNSAFE', { match: /"su".*setuid/ });
  await expectRefused(withBase({ path: 'sg/', type: 'dir', mode: 0o2755 }), 'E_ARCHIVE_UNSAFE', { match: /"sg\/"/ });
  await expectRefused(withBase({ path: 'tmp/', type: 'dir', mode: 0o1755 }), 'E_ARCHIVE_UNSAFE');
});

test('group- or world-writable modes are refused', async () => {
  await expectRefused(withBase({ path: 'open', body: 'x', mode: 0o777 }), 'E_ARCHIVE_UNSAFE', { match: /"open".*writable.*0777/ });
  await expectRefused(withBase({ path: 'gw', body: 'x', mode: 0o664 }), 'E_ARCHIVE_UNSAFE');
  await expectRefused(withBase({ path: 'dir/', type: 'dir', mode: 0o775 }), 'E_ARCHIVE_UNSAFE');
});

test('an entry not owned by 0:0 is refused with the tar flags to fix it', async () => {
  const hint = /tar --owner=0 --group=0 --numeric-owner/;
  await expectRefused(withBase({ path: 'mine', body: 'x', uid: 1001 }), 'E_ARCHIVE_UNSAFE', { match: /"mine".*uid 1001/, hint });
  await expectRefused(withBase({ path: 'ours', body: 'x', gid: 1001 }), 'E_ARCHIVE_UNSAFE', { match: /gid 1001/, hint });
  await expectRefused(withBase({ path: 'pax', body: 'x', pax: { uid: '1001' } }), 'E_ARCHIVE_UNSAFE', { hint });
});

test('a path reused with a different type is refused', async () => {
  await expectRefused(withBase({ path: 'a', body: 'x' }, { path: 'a/', type: 'dir' }), 'E_ARCHIVE_UNSAFE', { match: /earlier entry/ });
  await expectRefused(withBase({ path: 'd/', type: 'dir' }, { path: 'd', type: 'symlink', linkpath: 'release.json' }), 'E_ARCHIVE_UNSAFE');
  await expectRefused(withBase({ path: 'a', body: 'x' }, { path: 'a/b', body: 'x' }), 'E_ARCHIVE_UNSAFE', { match: /below the file "a"/ });
});

// ---- corrupt ----

test('a truncated gzip stream is E_ARCHIVE_CORRUPT', () => {
  const full = makeRelease({ name: 'demo', version: '1', files: { big: Buffer.alloc(200_000, 7) } });
  return expectRefused(full.subarray(0, full.length - 20), 'E_ARCHIVE_CORRUPT', { match: /truncated|gzip/ });
});

test('a tar truncated inside an entry is E_ARCHIVE_CORRUPT', () =>
  expectRefused(makeTarGz([...base(), { path: 'big', body: Buffer.alloc(10_000, 1) }], { truncateTarAt: 3 * BLOCK + 4000 }), 'E_ARCHIVE_CORRUPT', {
    match: /truncated/,
  }));

test('a tar without its end-of-archive marker is E_ARCHIVE_CORRUPT', () =>
  expectRefused(makeTarGz(base(), { eof: false }), 'E_ARCHIVE_CORRUPT', { match: /end-of-archive/ }));

test('a header with a bad checksum is E_ARCHIVE_CORRUPT', () =>
  expectRefused(withBase({ path: 'x', body: 'x', badChecksum: true }), 'E_ARCHIVE_CORRUPT', { match: /checksum/ }));

test('not gzip at all, or gzip inside gzip, is E_ARCHIVE_CORRUPT', async () => {
  await expectRefused(makeTar(base()), 'E_ARCHIVE_CORRUPT', { match: /gzip/ });
  await expectRefused(Buffer.from('definitely not an archive'), 'E_ARCHIVE_CORRUPT');
  await expectRefused(gzip(makeTarGz(base())), 'E_ARCHIVE_CORRUPT', { match: /twice/ });
});

test('entries hidden after a lone zero block are E_ARCHIVE_CORRUPT', () =>
  expectRefused(
    gzip(Buffer.concat([...base().map(entryBlocks), Buffer.alloc(BLOCK), entryBlocks({ path: 'hidden', body: 'x' }), Buffer.alloc(2 * BLOCK)])),
    'E_ARCHIVE_CORRUPT',
    { match: /zero block/ },
  ));

test('megabytes of data after the end-of-archive marker are E_ARCHIVE_CORRUPT', () =>
  expectRefused(makeTarGz(base(), { trailing: Buffer.alloc(4 * 1024 * 1024, 1) }), 'E_ARCHIVE_CORRUPT', { match: /after its end/ }));

test('a pax header over 1 MiB is refused, not silently ignored', () =>
  expectRefused(withBase({ path: 'x', body: 'x', pax: { comment: 'c'.repeat(1100 * 1024) } }), 'E_ARCHIVE_CORRUPT', { match: /larger than 1 MiB/ }));

// ---- limits ----

test('maxEntries', () =>
  expectRefused(withBase({ path: 'a', body: '' }, { path: 'b', body: '' }, { path: 'c', body: '' }), 'E_ARCHIVE_LIMIT', {
    extract: { limits: { maxEntries: 3 } },
    match: /more than 3 entries/,
  }));

test('maxFileBytes, from the header before the body is read', () =>
  expectRefused(withBase({ path: 'big', body: Buffer.alloc(2000) }), 'E_ARCHIVE_LIMIT', {
    extract: { limits: { maxFileBytes: 1000 } },
    match: /"big".*1000-byte/,
  }));

test('a huge declared size is refused before anything is read', () =>
  expectRefused(withBase({ path: 'huge', size: 10 * 1024 ** 3, body: 'tiny' }), 'E_ARCHIVE_LIMIT', { match: /"huge" is 10737418240 bytes/ }));

test('maxTotalBytes, counted as files stream in', async () => {
  const files = Array.from({ length: 10 }, (_, i): TarEntry => ({ path: `f${i}`, body: Buffer.alloc(1000, i) }));
  await expectRefused(withBase(...files), 'E_ARCHIVE_LIMIT', { extract: { limits: { maxTotalBytes: 3500 } }, match: /"f3".*3500/ });
});

test('maxPathBytes and maxDepth', async () => {
  await expectRefused(withBase({ path: 'x'.repeat(300), body: '' }), 'E_ARCHIVE_LIMIT', { extract: { limits: { maxPathBytes: 200 } } });
  await expectRefused(withBase({ path: 'a/b/c/d/e/f', body: '' }), 'E_ARCHIVE_LIMIT', { extract: { limits: { maxDepth: 4 } }, match: /deeper than 4/ });
  await expectRefused(withBase({ path: 'l', type: 'symlink', linkpath: 'y'.repeat(300) }), 'E_ARCHIVE_LIMIT', {
    extract: { limits: { maxPathBytes: 200 } },
  });
});

test('a gzip bomb is stopped early, before it fills the disk', async () => {
  // 64 MiB of zeros in 128 files, ~64 KiB compressed; the limit is 4 MiB.
  const files = Array.from({ length: 128 }, (_, i): TarEntry => ({ path: `z/${i}`, body: Buffer.alloc(512 * 1024) }));
  const archive = makeTarGz([...base(), ...files]);
  assert.ok(archive.length < 256 * 1024);
  const box = await sandbox(archive);
  try {
    const started = performance.now();
    const err = await extractRelease(box.archive, box.dest, { limits: { maxTotalBytes: 4 * 1024 * 1024 } }).catch((e: unknown) => e);
    assert.ok(err instanceof CutoverError && err.code === 'E_ARCHIVE_LIMIT', String(err));
    const written = execFileSync('du', ['-sb', box.dest], { encoding: 'utf8' });
    assert.ok(Number(written.split('\t')[0]) < 5 * 1024 * 1024, `wrote ${written}`);
    assert.ok(performance.now() - started < 5000);
    assert.deepEqual(openFdsUnder(box.dest), []);
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
});

// ---- environment ----

test('an aborted signal stops extraction and nothing is left open', async () => {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 5000; i++) files[`d/${i}`] = Buffer.alloc(4096, i);
  const box = await sandbox(makeRelease({ name: 'demo', version: '1', files }));
  try {
    const ac = new AbortController();
    const reason = new Error('stop');
    const p = extractRelease(box.archive, box.dest, { signal: ac.signal });
    // Abort once extraction is visibly under way.
    const poll = setInterval(() => {
      const d = path.join(box.dest, 'd');
      if (fs.existsSync(d) && fs.readdirSync(d).length > 20) ac.abort(reason);
    }, 1);
    await assert.rejects(p, (e) => e === reason).finally(() => clearInterval(poll));
    assert.ok(fs.readdirSync(path.join(box.dest, 'd')).length < 5000, 'stopped part way');
    assert.deepEqual(openFdsUnder(box.dest), []);
    const settled = await snapshot(box.dest);
    await sleep(30);
    assert.deepEqual(await snapshot(box.dest), settled);
    await assert.rejects(extractRelease(box.archive, box.dest, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
});

test('the staging directory must exist and be empty; a missing archive is E_FS', async () => {
  const box = await sandbox(makeRelease({ name: 'demo', version: '1' }));
  try {
    await writeFile(path.join(box.dest, 'leftover'), '');
    await assert.rejects(extractRelease(box.archive, box.dest), { code: 'E_FS', message: /not empty/ });
    await assert.rejects(extractRelease(box.archive, path.join(box.parent, 'nope')), { code: 'E_FS' });
    await rm(path.join(box.dest, 'leftover'));
    await assert.rejects(extractRelease(path.join(box.parent, 'missing.tar.gz'), box.dest), { code: 'E_FS', message: /missing\.tar\.gz/ });
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
});

test('a full disk is E_NO_SPACE', async (t) => {
  const box = await sandbox(makeRelease({ name: 'demo', version: '1', files: { big: Buffer.alloc(3 * 1024 * 1024, 3) } }));
  try {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', box.dest], { stdio: 'ignore' });
    } catch {
      t.skip('cannot mount a small tmpfs here');
      return;
    }
    try {
      await assert.rejects(extractRelease(box.archive, box.dest), { code: 'E_NO_SPACE', message: /big/ });
      assert.deepEqual(openFdsUnder(box.dest), []);
    } finally {
      execFileSync('umount', [box.dest]);
    }
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
});

// ---- runtime/ is modelled as the link it becomes ----

test('a link may resolve into runtime/ (the link to ROOT/runtime it becomes), also after stripping', async () => {
  for (const archive of [
    withBase({ path: 'log', type: 'symlink', linkpath: 'runtime/log' }, { path: 'etc/conf', type: 'symlink', linkpath: '../runtime/a/../conf' }),
    makeTarGz([...releaseEntries({ name: 'demo', version: '1', topDir: 'demo-1' }), { path: 'demo-1/log', type: 'symlink', linkpath: 'runtime/log' }]),
  ]) {
    const { box, cleanup } = await extractOk(archive);
    try {
      assert.equal(await readlink(path.join(box.dest, 'log')), 'runtime/log');
    } finally {
      await cleanup();
    }
  }
});

test('a link that climbs out of runtime/ is refused: runtime/.. is ROOT, not the release', async () => {
  await expectRefused(withBase({ path: 'esc', type: 'symlink', linkpath: 'runtime/../.cutover' }), 'E_ARCHIVE_UNSAFE', {
    match: /"esc" is a symlink to "runtime\/\.\.\/\.cutover", which climbs out of runtime\//,
  });
  await expectRefused(withBase({ path: 'd/esc', type: 'symlink', linkpath: '../runtime/x/../../etc' }), 'E_ARCHIVE_UNSAFE', { match: /climbs out of runtime/ });
  // Through another link: r -> runtime, then r/.. is ROOT too.
  await expectRefused(
    withBase({ path: 'r', type: 'symlink', linkpath: 'runtime' }, { path: 'esc', type: 'symlink', linkpath: 'r/../releases' }),
    'E_ARCHIVE_UNSAFE',
    {
      match: /"esc"/,
    },
  );
  // Even when the archive itself ships a runtime/ directory (it is replaced on install).
  await expectRefused(
    withBase({ path: 'runtime/', type: 'dir' }, { path: 'runtime/sub/', type: 'dir' }, { path: 'esc', type: 'symlink', linkpath: 'runtime/sub/../..' }),
    'E_ARCHIVE_UNSAFE',
    { match: /climbs out of runtime/ },
  );
  await expectRefused(
    makeTarGz([...releaseEntries({ name: 'demo', version: '1', topDir: 'demo-1' }), { path: 'demo-1/esc', type: 'symlink', linkpath: 'runtime/../.cutover' }]),
    'E_ARCHIVE_UNSAFE',
    { match: /climbs out of runtime/ },
  );
});

test("links inside the archive's own runtime/ are not followed (the directory is replaced), and linkedDir null is a plain directory", async () => {
  const archive = withBase(
    { path: 'runtime/', type: 'dir' },
    { path: 'runtime/up', type: 'symlink', linkpath: '..' },
    { path: 'up2', type: 'symlink', linkpath: 'runtime/up' },
  );
  const { cleanup } = await extractOk(archive);
  await cleanup();
  const { cleanup: c2 } = await extractOk(withBase({ path: 'runtime/', type: 'dir' }, { path: 'back', type: 'symlink', linkpath: 'runtime/../bin' }), {
    linkedDir: null,
  });
  await c2();
});

// ---- disk: declared size, expansion ratio, budget ----

test('a zero bomb is refused by the expansion ratio from its header, before a byte of it is written', async () => {
  const archive = await makeZeroBomb('demo', '1.4.0', 64 * 1024 * 1024);
  assert.ok(archive.length < 256 * 1024, `bomb is ${archive.length} bytes`);
  const box = await sandbox(archive);
  try {
    const err = await extractRelease(box.archive, box.dest, { maxRatio: 100 }).catch((e: unknown) => e);
    assert.ok(err instanceof CutoverError && err.code === 'E_ARCHIVE_LIMIT', String(err));
    assert.match(err.message, /"zeros\/0\.bin" takes the archive past \d+ unpacked bytes, 100 times its \d+-byte download \(\[disk\] max_ratio\)/);
    assert.match(err.hint ?? '', /decompression bomb/);
    const du = Number(execFileSync('du', ['-sb', box.dest], { encoding: 'utf8' }).split('\t')[0]);
    assert.ok(du < 64 * 1024, `wrote ${du} bytes`);
    assert.equal(fs.existsSync(path.join(box.dest, 'zeros', '0.bin')), false);
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
});

test('many small zero files: the ratio stops the one that crosses it', async () => {
  const archive = await makeZeroBomb('demo', '1.4.0', 64 * 1024 * 1024, { files: 64 });
  const box = await sandbox(archive);
  try {
    const err = await extractRelease(box.archive, box.dest, { maxRatio: 100 }).catch((e: unknown) => e);
    assert.ok(err instanceof CutoverError && err.code === 'E_ARCHIVE_LIMIT', String(err));
    const du = Number(execFileSync('du', ['-sb', box.dest], { encoding: 'utf8' }).split('\t')[0]);
    assert.ok(du <= archive.length * 100 + 64 * 1024, `wrote ${du} bytes, cap ${archive.length * 100}`);
  } finally {
    await rm(box.parent, { recursive: true, force: true });
  }
});

test('the declared unpacked size is a ceiling: equal is fine, a byte more is refused', async () => {
  const body = Buffer.alloc(10_000, 7);
  const archive = withBase({ path: 'data.bin', body });
  const { result, cleanup } = await extractOk(archive);
  await cleanup();
  const { cleanup: c2 } = await extractOk(archive, { declaredUnpackedBytes: result.bytes });
  await c2();
  await expectRefused(archive, 'E_ARCHIVE_LIMIT', {
    extract: { declaredUnpackedBytes: result.bytes - 1 },
    match: /"data\.bin" takes the archive past its declared unpacked size of \d+ bytes \(index unpacked_size\)/,
    hint: /larger than its index entry says/,
  });
});

test('the disk budget counts 4 KiB blocks and directories, and is refused before writing', async () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 10; i++) files[`d${i}/f`] = 'x';
  const archive = makeRelease({ name: 'demo', version: '1', files });
  const { result, cleanup } = await extractOk(archive);
  await cleanup();
  // release.json + 10 one-byte files = 11 blocks, 10 directories = 10 blocks.
  assert.equal(result.diskBytes, 21 * 4096);
  const { cleanup: c2 } = await extractOk(archive, { budgetBytes: result.diskBytes });
  await c2();
  await expectRefused(archive, 'E_ARCHIVE_LIMIT', {
    extract: { budgetBytes: result.diskBytes - 1 },
    match: /would take the release past the \d+ bytes of disk space it may use/,
    hint: /free disk space/,
  });
});
