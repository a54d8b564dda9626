/**
 * The installer with the app's units, under a real systemd: the private one the service tests
 * boot (test/helpers/systemd.ts). The vendor's copy is piped into `bash -s --` inside a mount
 * namespace made within systemd's, over overlays of /etc and /usr/local/bin and a scratch /opt,
 * with /etc/systemd/system bound to systemd's unit folder, so that the units the installer writes
 * are the ones systemd loads (`daemon-reload`) and the host's files stay as they were. The first
 * update starts the example units (as a real account, made before, since systemd resolves User=
 * outside the overlay) and gates on /health; then the installed app updates with ordered restarts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAccount } from '../helpers/accounts.ts';
import { APP, freePort, stopAll, health, unitFrom } from '../helpers/app-units.ts';
import { buildExecutable, REPO } from '../helpers/cli.ts';
import { startSystemd, systemdAvailable, type ExecResult, type Systemd } from '../helpers/systemd.ts';
import { IDENTITY_TEMPLATE, ISSUER, World } from '../helpers/world.ts';

const avail = systemdAvailable();
const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('install.sh --unit, under a real systemd', { skip: avail.ok ? false : avail.why }, () => {
  let sd: Systemd;
  let w: World;
  let dir: string;
  let account = '';
  let port = 0;
  let hostPasswd = '';

  /** Inside systemd's namespace, then a mount namespace of its own over the overlays. */
  function inside(argv: string[]): Promise<ExecResult> {
    const script = [
      'set -e',
      'mount --make-rprivate /',
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc.u,workdir=${dir}/etc.w /etc`,
      `mount --bind ${sd.unitDir} /etc/systemd/system`,
      `mount -t overlay overlay -o lowerdir=/usr/local/bin,upperdir=${dir}/bin.u,workdir=${dir}/bin.w /usr/local/bin`,
      `mount --bind ${dir}/opt /opt`,
      'exec "$@"',
    ].join('\n');
    return sd.exec('unshare', ['-m', 'sh', '-c', script, 'sh', ...argv], { timeoutMs: 180_000 });
  }

  before(async () => {
    account = createAccount();
    // The account is the host's (made before, for systemd's User=); nothing after it may touch passwd.
    hostPasswd = sha256('/etc/passwd');
    sd = await startSystemd();
    w = await World.create({ base: sd.workDir });
    chmodSync(w.dir, 0o755);
    dir = path.join(sd.workDir, 'installer');
    for (const d of ['etc.u', 'etc.w', 'bin.u', 'bin.w', 'opt', 'out', 'units']) mkdirSync(path.join(dir, d), { recursive: true });
    const exe = buildExecutable('x64', path.join(dir, 'out'));
    w.server.files.set('cutover/cutover-linux-x64', { file: exe });
    port = await freePort();
    for (const u of ['demo.service', 'demo-worker.service']) writeFileSync(path.join(dir, 'units', u), unitFrom(u, w.root, port, account));
    let copy = readFileSync(path.join(REPO, 'installer', 'install.sh'), 'utf8');
    for (const [k, v] of Object.entries({
      INDEX_URL: w.server.url('demo/index.json'),
      IDENTITY: IDENTITY_TEMPLATE,
      ISSUER,
      CUTOVER_URL_X64: w.server.url('cutover/cutover-linux-x64'),
      CUTOVER_SHA256_X64: sha256(exe),
    })) {
      copy = copy.replace(new RegExp(`^${k}=".*"$`, 'm'), `${k}="${v}"`);
    }
    writeFileSync(path.join(dir, 'install.sh'), copy);
    await w.publish('1.0.0', { files: { 'server.mjs': APP } });
  });
  after(() => stopAll(sd, w, account));

  test('the units are installed, loaded, started by the first update and gated on /health', async () => {
    const args = [
      ...['--version', 'v1.0.0', '--root', w.root, '--user', account],
      ...['--unit', path.join(dir, 'units', 'demo.service'), '--unit', path.join(dir, 'units', 'demo-worker.service')],
      ...['--health', `http://127.0.0.1:${port}/health`, '--ca', w.caFile, '--trusted-root', w.trustedRoot],
    ];
    const r = await inside(['sh', '-c', `cat '${dir}/install.sh' | bash -s -- "$@"`, 'sh', ...args]);
    assert.equal(r.code, 0, `${r.stderr}\n${sd.journald ? await sd.journal('demo.service') : ''}`);
    assert.deepEqual(
      [...r.stderr.matchAll(/Restarting (\S+)/g)].map((m) => m[1]),
      ['demo.service', 'demo-worker.service'],
    );
    assert.match(r.stderr, /health: ok/);
    assert.deepEqual(
      readdirSync(sd.unitDir)
        .filter((f) => f.startsWith('demo'))
        .sort(),
      ['demo-updater.service', 'demo-worker.service', 'demo.service'],
    );
    for (const unit of ['demo.service', 'demo-worker.service']) {
      const p = await sd.show(unit, ['ActiveState', 'User']);
      assert.deepEqual([p.ActiveState, p.User], ['active', account], unit);
    }
    assert.deepEqual(await health(port), { status: 200, version: '1.0.0' });
    // systemd loaded the updater unit the installer wrote (daemon-reload ran).
    const updater = await sd.show('demo-updater.service', ['LoadState', 'ExecStart']);
    assert.equal(updater.LoadState, 'loaded');
    assert.match(updater.ExecStart, /\/usr\/local\/bin\/demo ; argv\[\]=\/usr\/local\/bin\/demo daemon/);
    assert.equal(sha256('/etc/passwd'), hostPasswd);
    assert.equal(existsSync('/etc/demo'), false);
  });

  test('the installed app updates: ordered restarts, the gate, the new version answering', async () => {
    await w.publish('1.1.0', { files: { 'server.mjs': APP } });
    const r = await inside(['demo', 'update']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      [...r.stderr.matchAll(/Restarting (\S+)/g)].map((m) => m[1]),
      ['demo.service', 'demo-worker.service'],
    );
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
  });
});
