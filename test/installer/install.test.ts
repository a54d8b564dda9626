/**
 * installer/install.sh as a vendor hosts it: a copy with the vendor's lines set (this world's
 * index, identity and the executable's URL and sha256), piped into `bash -s --` as root. It runs
 * in a private mount namespace over overlays of /etc and /usr/local/bin and a scratch /opt and
 * /run, so the host's files stay as they were; each run re-enters the same overlays. The
 * executable comes from a real `build:exe` served by the test HTTPS server, the app's release from
 * a real signed index.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildExecutable, REPO, runCommand, type RunResult } from '../helpers/cli.ts';
import { IDENTITY_TEMPLATE, ISSUER, World } from '../helpers/world.ts';

const INSTALLER = path.join(REPO, 'installer', 'install.sh');
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const root = process.getuid?.() === 0;
const skip = !root ? 'needs root (mount namespace, useradd)' : spawnSync('unshare', ['--version']).status !== 0 ? 'needs unshare (util-linux)' : false;

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

test('bad arguments exit 2 before anything is read or written', () => {
  for (const args of [['--version', 'latest'], ['--root', 'relative'], ['--root', '/'], ['--user', 'root'], ['--unit', '/nonexistent'], ['--bogus']]) {
    const r = spawnSync('bash', [INSTALLER, ...args], { encoding: 'utf8', env: { PATH: SYSTEM_PATH } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^demo-install: (error: |unknown argument)/m);
  }
});

test('shellcheck is clean', () => {
  const r = spawnSync('shellcheck', [INSTALLER], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'shellcheck must be installed (.ci/run installs it)');
  assert.equal(r.status, 0, r.stdout);
});

test('the updater unit the installer writes is systemd/cutover-daemon.service for that app', () => {
  const text = readFileSync(INSTALLER, 'utf8');
  const m = /write_file "\$UNIT_DIR\/\$APP-updater\.service" <<EOF\n([\s\S]*?)\nEOF\n/.exec(text);
  assert.ok(m?.[1], 'the heredoc is there');
  assert.equal(
    `${m[1].replaceAll('$APP', 'demo').replaceAll('$ROOT', '/opt/demo')}\n`,
    readFileSync(path.join(REPO, 'systemd', 'cutover-daemon.service'), 'utf8'),
  );
});

describe('install.sh | sudo bash, in a private mount namespace', { skip }, () => {
  let w: World;
  let dir: string;
  let exe: string;

  /** The vendor's copy: the lines under "Set by the vendor" filled in. */
  function vendorCopy(vars: Record<string, string>): string {
    let text = readFileSync(INSTALLER, 'utf8');
    for (const [k, v] of Object.entries(vars)) {
      const re = new RegExp(`^${k}=".*"$`, 'm');
      assert.match(text, re, `${k} is a vendor line`);
      text = text.replace(re, `${k}="${v}"`);
    }
    return text;
  }

  function vars(over: Record<string, string> = {}): Record<string, string> {
    return {
      APP: 'demo',
      INDEX_URL: w.server.url('demo/index.json'),
      IDENTITY: IDENTITY_TEMPLATE,
      ISSUER,
      CUTOVER_URL_X64: w.server.url('cutover/cutover-linux-x64'),
      CUTOVER_SHA256_X64: sha256(exe),
      ...over,
    };
  }

  /** Run `sh -c cmd` (or the script on stdin, through bash -s) inside the namespace. */
  function inside(argv: string[], stdin?: string): Promise<RunResult> {
    const script = [
      'set -e',
      'mount --make-rprivate /',
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc.u,workdir=${dir}/etc.w /etc`,
      `mount -t overlay overlay -o lowerdir=/usr/local/bin,upperdir=${dir}/bin.u,workdir=${dir}/bin.w /usr/local/bin`,
      `mount --bind ${dir}/opt /opt`,
      'mount -t tmpfs -o size=1m none /run',
      'exec "$@"',
    ].join('\n');
    return runCommand('unshare', ['-m', 'sh', '-c', script, 'sh', ...argv], { env: { PATH: SYSTEM_PATH, HOME: dir, TMPDIR: dir }, stdin: stdin ?? '' });
  }

  /** `curl … | sudo bash -s -- args` with the vendor's copy. */
  const install = (args: string[], over: Record<string, string> = {}): Promise<RunResult> => inside(['bash', '-s', '--', ...args], vendorCopy(vars(over)));
  const sh = (cmd: string): Promise<RunResult> => inside(['sh', '-c', cmd]);
  const trust = (): string[] => ['--ca', w.caFile, '--trusted-root', w.trustedRoot];

  const hostBefore: Record<string, boolean | string> = {};
  const host = (): Record<string, boolean | string> => ({
    passwd: sha256('/etc/passwd'),
    group: sha256('/etc/group'),
    etcDemo: existsSync('/etc/demo'),
    bin: existsSync('/usr/local/bin/demo'),
    optCutover: existsSync('/opt/cutover'),
    optDemo: existsSync('/opt/demo'),
    unit: existsSync('/etc/systemd/system/demo-updater.service'),
  });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'cutover-installer-'));
    chmodSync(dir, 0o755);
    for (const d of ['etc.u', 'etc.w', 'bin.u', 'bin.w', 'opt', 'out']) mkdirSync(path.join(dir, d));
    exe = buildExecutable('x64', path.join(dir, 'out'));
    w = await World.create();
    w.server.files.set('cutover/cutover-linux-x64', { file: exe });
    await w.publish('1.0.0');
    Object.assign(hostBefore, host());
  });
  after(async () => {
    await w?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('installs the executable, the account, the layout, the config and the unit, then the first release', async () => {
    const r = await install(['--version', 'v1.0.0', ...trust()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /demo-install: cutover 0\.1\.0 .* installed in \/opt\/cutover\/cutover/);
    assert.match(r.stderr, /demo-install: done\. Next:/);
    // What landed, read from inside: the overlays hold it.
    const probe = await sh(
      [
        'sha256sum /opt/cutover/cutover | cut -d" " -f1',
        'readlink /usr/local/bin/demo',
        'getent passwd demo | cut -d: -f1,6,7',
        'readlink /opt/demo/current',
        'stat -c "%U %a" /opt/demo /opt/demo/runtime',
        'test -f /etc/systemd/system/demo-updater.service && echo unit',
      ].join(' && '),
    );
    assert.equal(probe.code, 0, probe.stderr);
    assert.deepEqual(probe.stdout.trim().split('\n'), [
      sha256(exe),
      '/opt/cutover/cutover',
      'demo:/opt/demo/runtime:/usr/sbin/nologin',
      'releases/v1.0.0',
      'root 755',
      'demo 750',
      'unit',
    ]);
    const cfg = readFileSync(path.join(dir, 'etc.u', 'demo', 'cutover.toml'), 'utf8');
    assert.match(cfg, /^app = "demo"\nroot = "\/opt\/demo"\nuser = "demo"$/m);
    assert.match(cfg, new RegExp(`^index = "${w.server.url('demo/index.json').replace(/[.]/g, '\\.')}"$`, 'm'));
    assert.match(cfg, /^identity = "https:\/\/github\.com\/acme\/demo\/\.github\/workflows\/release\.yml@refs\/tags\/v\{version\}"$/m);
    assert.deepEqual(host(), hostBefore, 'the host is untouched');
  });

  test('the installed app updates, and a second run of the installer is harmless', async () => {
    const cfgFile = path.join(dir, 'etc.u', 'demo', 'cutover.toml');
    writeFileSync(cfgFile, `${readFileSync(cfgFile, 'utf8')}# the operator's edit\n`);
    const cfg = readFileSync(cfgFile, 'utf8');
    await w.publish('1.1.0', { files: { 'bin/demo': '#!/bin/sh\necho demo 1.1.0\n' } });
    let r = await sh('demo update && readlink /opt/demo/current');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'releases/v1.1.0');

    r = await install(trust());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /account demo exists/);
    assert.match(r.stderr, /cutover\.toml exists: left as it is/);
    assert.match(r.stderr, /already current/);
    assert.equal(readFileSync(cfgFile, 'utf8'), cfg);
    r = await sh('readlink /opt/demo/current; ls -A /opt/cutover');
    assert.deepEqual(r.stdout.trim().split('\n'), ['releases/v1.1.0', 'cutover']);
  });

  test('a wrong sha256 runs nothing and leaves the installed executable as it was', async () => {
    const tampered = path.join(dir, 'tampered');
    copyFileSync(exe, tampered);
    writeFileSync(tampered, Buffer.from('tampered'), { flag: 'a' });
    w.server.files.set('cutover/cutover-linux-x64', { file: tampered });
    try {
      const r = await install(['--upgrade-cutover', ...trust()]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /^demo-install: error: cutover from https:\/\/.* has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}: not installed/m);
      const probe = await sh('sha256sum /opt/cutover/cutover | cut -d" " -f1; ls -A /opt/cutover');
      assert.deepEqual(probe.stdout.trim().split('\n'), [sha256(exe), 'cutover']);
    } finally {
      w.server.files.set('cutover/cutover-linux-x64', { file: exe });
    }
  });

  test('--upgrade-cutover replaces only the executable, by rename', async () => {
    const next = path.join(dir, 'next');
    copyFileSync(exe, next);
    writeFileSync(next, Buffer.from('\0next build'), { flag: 'a' });
    w.server.files.set('cutover/cutover-linux-x64', { file: next });
    try {
      const before = await sh('stat -c %i /opt/cutover/cutover; readlink /opt/demo/current; cat /etc/demo/cutover.toml');
      const r = await install(['--upgrade-cutover', ...trust()], { CUTOVER_SHA256_X64: sha256(next) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cutover replaced; nothing else changed/);
      const after = await sh('stat -c %i /opt/cutover/cutover; readlink /opt/demo/current; cat /etc/demo/cutover.toml');
      const [inodeBefore, ...restBefore] = before.stdout.split('\n');
      const [inodeAfter, ...restAfter] = after.stdout.split('\n');
      assert.notEqual(inodeAfter, inodeBefore, 'a new file renamed into place');
      assert.deepEqual(restAfter, restBefore);
      const sum = await sh('sha256sum /opt/cutover/cutover | cut -d" " -f1; demo --version');
      assert.equal(sum.code, 0, sum.stderr);
      assert.deepEqual(sum.stdout.trim().split('\n'), [sha256(next), 'demo: cutover 0.1.0 (Node ' + process.version + ')']);
    } finally {
      w.server.files.set('cutover/cutover-linux-x64', { file: exe });
    }
  });

  test('a source install (/opt/cutover/.git) is refused, exit 2, nothing changed', async () => {
    const before = await sh('mkdir /opt/cutover/.git && sha256sum /opt/cutover/cutover');
    const r = await install(trust());
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^demo-install: error: \/opt\/cutover holds \.git\/: a source install/m);
    const after = await sh('sha256sum /opt/cutover/cutover && rmdir /opt/cutover/.git');
    assert.equal(after.stdout, before.stdout);
  });

  test('--unit installs the app units and names them, in the order given, in a new config', async () => {
    const units = path.join(dir, 'units');
    mkdirSync(units);
    writeFileSync(path.join(units, 'shop.service'), '[Service]\nExecStart=/opt/shop/current/bin/shop\nUser=shop\n');
    writeFileSync(path.join(units, 'shop-worker.service'), '[Service]\nExecStart=/opt/shop/current/bin/worker\nUser=shop\n');
    writeFileSync(path.join(units, 'README'), 'not a unit');
    const bad = await install(['--unit', path.join(units, 'README'), ...trust()], { APP: 'shop' });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /^shop-install: error: --unit .*README is not a NAME\.service file$/m);
    assert.equal(existsSync(path.join(dir, 'etc.u', 'shop')), false, 'refused before anything was written');
    const units2 = ['--unit', path.join(units, 'shop.service'), '--unit', path.join(units, 'shop-worker.service')];
    const r = await install([...units2, '--health', 'http://127.0.0.1:1/health', ...trust()], { APP: 'shop' });
    const cfg = readFileSync(path.join(dir, 'etc.u', 'shop', 'cutover.toml'), 'utf8');
    assert.match(cfg, /^\[service\]\nunits = \["shop\.service", "shop-worker\.service"\]$/m);
    assert.match(cfg, /^\[health\]\nurl = "http:\/\/127\.0\.0\.1:1\/health"$/m);
    for (const u of ['shop.service', 'shop-worker.service', 'shop-updater.service']) assert.ok(existsSync(path.join(dir, 'etc.u', 'systemd', 'system', u)), u);
    // The index serves demo's releases, not shop's: the first update refuses them, and the
    // installer says it stopped there (install-systemd.test.ts runs units under a real systemd).
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^shop-install: error: the first update failed/m);
  });
});
