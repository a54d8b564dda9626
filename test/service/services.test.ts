import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireLock } from '../../src/state/lock.ts';
import { createAccount, idsOf } from '../helpers/accounts.ts';
import { APP, cliIn, freePort, stopAll, unitsConfig, health, NODE_FLAGS, unitFrom } from '../helpers/app-units.ts';
import { CLI, REPO } from '../helpers/cli.ts';
import { startSystemd, systemdAvailable, type Systemd } from '../helpers/systemd.ts';
import { lastLine, World } from '../helpers/world.ts';

const avail = systemdAvailable();

describe('services: ordered restarts, health gate, automatic rollback, daemon (real systemd)', { skip: avail.ok ? false : avail.why }, () => {
  let sd: Systemd;
  let w: World;
  let port = 0;
  let account = '';
  const release = (version: string, behaviour?: object) =>
    w.publish(version, { files: { 'server.mjs': APP, ...(behaviour ? { 'behaviour.json': JSON.stringify(behaviour) } : {}) } });
  const current = () => readlinkSync(path.join(w.root, 'current'));
  const state = () =>
    JSON.parse(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8')) as { bad: string[]; journal: unknown; previous: string | null };

  before(async () => {
    account = createAccount();
    sd = await startSystemd();
    w = await World.create({ base: sd.workDir });
    // mkdtemp made the world dir 0700: the app's account must pass through it to reach its release.
    chmodSync(w.dir, 0o755);
    w.runner = cliIn(sd);
    port = await freePort();
    w.writeConfig({
      top: `${unitsConfig(account, port)}
[daemon]
interval = "10s"
auto = "patch"
`,
    });
    sd.writeUnit('demo.service', unitFrom('demo.service', w.root, port, account));
    sd.writeUnit('demo-worker.service', unitFrom('demo-worker.service', w.root, port, account));
    await sd.daemonReload();
    await release('1.0.0');
    const r = await w.run(['update', '--version', '1.0.0']);
    assert.equal(r.code, 0, `${r.stderr}\n${sd.journald ? await sd.journal('demo.service') : ''}`);
  });
  after(() => stopAll(sd, w, account));

  test('a good update restarts the units in order and passes the health gate', async () => {
    await release('1.1.0');
    const before = await sd.show('demo.service', ['MainPID']);
    const started = Date.now();
    const r = await w.run(['update', '--version', '1.1.0', '--json']);
    const ms = Date.now() - started;
    assert.equal(r.code, 0, r.stderr);
    const order = [...r.stderr.matchAll(/Restarting (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(order, ['demo.service', 'demo-worker.service']);
    assert.match(r.stderr, /health: ok \(3\/3\)/);
    const app = await sd.show('demo.service', ['ActiveState', 'MainPID', 'ActiveEnterTimestampMonotonic']);
    const worker = await sd.show('demo-worker.service', ['ActiveState', 'ActiveEnterTimestampMonotonic']);
    assert.equal(app.ActiveState, 'active');
    assert.equal(worker.ActiveState, 'active');
    assert.notEqual(app.MainPID, before.MainPID);
    assert.ok(Number(app.ActiveEnterTimestampMonotonic) < Number(worker.ActiveEnterTimestampMonotonic), 'app up before worker');
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
    assert.equal(state().journal, null);
    // Both units run as the app's account, as shipped (User=demo), not as root.
    const ids = idsOf(account);
    for (const unit of ['demo.service', 'demo-worker.service']) {
      const p = await sd.show(unit, ['MainPID', 'User', 'Group']);
      assert.deepEqual([p.User, p.Group], [account, account], unit);
      const status = await sd.exec('cat', [`/proc/${p.MainPID}/status`]);
      assert.equal(status.code, 0, status.stderr);
      const uids = (/^Uid:\s+(.*)$/m.exec(status.stdout)?.[1] ?? '').split(/\s+/).map(Number); // real, effective, saved, fs
      assert.deepEqual(uids, [ids.uid, ids.uid, ids.uid, ids.uid], `${unit} main process uids`);
    }
    // runtime/ is the account's, and the app (as that account) wrote its start record there.
    const rt = statSync(path.join(w.root, 'runtime'));
    assert.deepEqual([rt.uid, rt.gid, (rt.mode & 0o7777).toString(8)], [ids.uid, ids.gid, '750']);
    const lastStart = path.join(w.root, 'runtime', 'last-start');
    assert.equal(statSync(lastStart).uid, ids.uid, 'written by the app as its account');
    assert.deepEqual(JSON.parse(readFileSync(lastStart, 'utf8')), { version: '1.1.0', pid: Number(app.MainPID), uid: ids.uid });
    console.log(`# measured: update start to healthy ${ms} ms (CLI wall time, includes download and verification)`);
  });

  async function expectRolledBack(version: string, reason: RegExp): Promise<void> {
    const r = await w.run(['update', '--version', version, '--json']);
    assert.equal(r.code, 8, r.stderr);
    const line = r.stderr.trim().split('\n').pop() ?? '';
    assert.match(line, new RegExp(`E_UNHEALTHY: v${version.replaceAll('.', '\\.')} was unhealthy`));
    assert.match(line, reason);
    assert.match(line, /rolled back to v1\.1\.0, which is healthy again/);
    assert.match(line, /journalctl -u demo\.service -u demo-worker\.service/);
    const err = JSON.parse(lastLine(r.stdout)) as { error: { details: { rollbackMs: number } } };
    console.log(`# measured: failed gate to previous release healthy: ${err.error.details.rollbackMs} ms (v${version})`);
    assert.equal(current(), 'releases/v1.1.0');
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
    assert.equal((await sd.show('demo.service', ['ActiveState'])).ActiveState, 'active');
    assert.ok(state().bad.includes(version), 'marked bad');
    assert.equal(state().journal, null);
    assert.equal(state().previous, '1.0.0', 'rollback target unchanged by the failed attempt');
  }

  test('a release whose unit crash-loops is rolled back', async () => {
    await release('1.2.0', { crash: true });
    await expectRolledBack('1.2.0', /demo\.service/);
  });

  test('a release whose worker crash-loops after READY is rolled back, though /health answers', async () => {
    await release('1.2.3', { workerCrashMs: 100 });
    await expectRolledBack('1.2.3', /demo-worker\.service (crashed|failed|is activating)/);
  });

  test('a release whose health answers 500 is rolled back', async () => {
    await release('1.2.1', { health: 500 });
    await expectRolledBack('1.2.1', /HTTP 500/);
  });

  test('a release whose health endpoint hangs is rolled back', async () => {
    await release('1.2.2', { hang: true });
    await expectRolledBack('1.2.2', /no answer within/);
  });

  test('rollback restarts the units and checks health; update goes forward again', async () => {
    let r = await w.run(['rollback']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Restarting demo\.service/);
    assert.deepEqual(await health(port), { status: 200, version: '1.0.0' });
    r = await w.run(['update', '--version', '1.1.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
  });

  test('pre-flight: an unhealthy deployment is not updated unless --force', async () => {
    await release('1.1.1');
    assert.equal((await sd.systemctl(['stop', 'demo.service'])).code, 0);
    const r = await w.run(['update', '--version', '1.1.1']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_PREFLIGHT: the current release v1\.1\.0 is not healthy/);
    assert.equal(current(), 'releases/v1.1.0');
    const forced = await w.run(['update', '--version', '1.1.1', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(await health(port), { status: 200, version: '1.1.1' });
    assert.equal((await w.run(['rollback', '--to', 'v1.1.0'])).code, 0);
  });

  test('--no-restart switches only the pointer', async () => {
    const pid = (await sd.show('demo.service', ['MainPID'])).MainPID;
    const r = await w.run(['update', '--version', '1.1.1', '--no-restart']);
    assert.equal(r.code, 0, JSON.stringify(r));
    assert.doesNotMatch(r.stderr, /Restarting|Pre-flight/);
    assert.equal(current(), 'releases/v1.1.1');
    assert.equal((await sd.show('demo.service', ['MainPID'])).MainPID, pid);
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
    const back = await w.run(['rollback', '--to', 'v1.1.0']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
  });

  test('SIGTERM during the health gate rolls back; nothing half-switched', async () => {
    await release('1.1.2', { hang: true });
    const s = sd.spawn(process.execPath, [...NODE_FLAGS, CLI, '--config', w.configFile, 'update', '--version', '1.1.2'], { env: { CUTOVER_PROG: 'demo' } });
    for (let i = 0; i < 200 && !/Checking health/.test(s.output().stderr); i++) await sleep(50);
    await s.kill('SIGTERM');
    const r = await s.done;
    assert.equal(r.code, 8, r.stderr);
    assert.match(r.stderr, /interrupted by SIGTERM/);
    assert.equal(current(), 'releases/v1.1.0');
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
    assert.ok(!state().bad.includes('1.1.2'), 'an interrupted release is not marked bad');
  });

  test('SIGKILL after the switch: the next run undoes it from the recorded state', async () => {
    const s = sd.spawn(process.execPath, [...NODE_FLAGS, CLI, '--config', w.configFile, 'update', '--version', '1.1.2'], { env: { CUTOVER_PROG: 'demo' } });
    for (let i = 0; i < 200 && !/Checking health/.test(s.output().stderr); i++) await sleep(50);
    await s.kill('SIGKILL');
    await s.done;
    assert.equal(current(), 'releases/v1.1.2', 'killed after switching');
    const r = await w.run(['status']);
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      /interrupted: update v1\.1\.0 -> v1\.1\.2 .*stopped at step \d+\/\d+ \((restart|gate)\); the next update, rollback or gc will undo it \(back to v1\.1\.0\)/,
    );
    const g = await w.run(['gc']);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stderr, /an interrupted update to v1\.1\.2 \(pid \d+\) never finished; undoing it/);
    assert.match(g.stderr, /rolled back to v1\.1\.0, which is healthy again .*; removed releases\/v1\.1\.2/);
    assert.equal(current(), 'releases/v1.1.0');
    assert.deepEqual(await health(port), { status: 200, version: '1.1.0' });
    assert.equal(state().journal, null);
  });

  describe('the daemon', () => {
    const daemonUnit = () =>
      readFileSync(path.join(REPO, 'systemd', 'cutover-daemon.service'), 'utf8')
        .replace(
          /^ExecStart=.*$/m,
          `ExecStart=${process.execPath} ${NODE_FLAGS.join(' ')} ${CLI} --config ${w.configFile} daemon\nEnvironment=CUTOVER_PROG=demo\nEnvironment=PATH=${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
        )
        .replace('ReadWritePaths=/opt/demo', `ReadWritePaths=${w.root}`)
        .replace('WatchdogSec=60', 'WatchdogSec=3')
        .replace('RestartSec=30', 'RestartSec=1')
        .replace('PrivateTmp=yes', 'PrivateTmp=no');

    test('READY, STATUS and WATCHDOG through systemctl; applies a patch release, leaves a major one', async () => {
      await release('1.1.3');
      await release('2.0.0');
      sd.writeUnit('demo-updater.service', daemonUnit());
      await sd.daemonReload();
      const start = await sd.systemctl(['start', 'demo-updater.service']);
      assert.equal(start.code, 0, start.stderr);
      const shown = await sd.show('demo-updater.service', ['ActiveState', 'SubState', 'WatchdogUSec', 'StatusText', 'Type']);
      assert.equal(shown.ActiveState, 'active', 'READY=1 received');
      assert.equal(shown.WatchdogUSec, '3s');
      const status = await sd.waitFor('demo-updater.service', (p) => /installed v1\.1\.3/.test(p.StatusText), 60_000);
      assert.match(status.StatusText, /current v1\.1\.3; last check \S+: installed v1\.1\.3; next check \S+/);
      assert.equal(current(), 'releases/v1.1.3');
      assert.deepEqual(await health(port), { status: 200, version: '1.1.3' });
      // Alive past two watchdog periods: it pings.
      const pid = (await sd.show('demo-updater.service', ['MainPID'])).MainPID;
      await sleep(7000);
      const later = await sd.show('demo-updater.service', ['ActiveState', 'MainPID', 'NRestarts']);
      assert.equal(later.ActiveState, 'active');
      assert.equal(later.MainPID, pid);
      assert.equal(later.NRestarts, '0');
      if (sd.journald) {
        const log = await sd.journal('demo-updater.service');
        assert.match(log, /v2\.0\.0 is (also )?available \(major update\); daemon\.auto = "patch" leaves it to a manual `update`/);
      }
      assert.notEqual(current(), 'releases/v2.0.0');
      const check = await w.run(['check', '--json']);
      assert.equal(check.code, 0, check.stderr);
      const c = JSON.parse(lastLine(check.stdout)) as { available: boolean; newest: string; daemon: string };
      assert.equal(c.newest, '2.0.0');
      assert.equal(c.available, true);
      assert.equal(c.daemon, 'none');
    });

    test('the lock is shared: the daemon skips while the CLI works, the CLI gets 7 while the daemon works', async () => {
      // CLI (here: the test holding the same flock) works → the daemon's round is skipped.
      const lock = acquireLock(path.join(w.root, '.cutover', 'lock'), 'update');
      try {
        await release('1.1.4');
        await sd.systemctl(['restart', 'demo-updater.service']);
        const st = await sd.waitFor('demo-updater.service', (p) => /another operation holds the lock/.test(p.StatusText), 30_000);
        assert.match(st.StatusText, /skipped: another operation holds the lock/);
        assert.equal(current(), 'releases/v1.1.3');
      } finally {
        lock.release();
      }
      // The daemon works (a slow download) → a manual update exits 7 at once.
      w.fault('demo-1.1.4.tar.gz', { kind: 'trickle', intervalMs: 2 });
      await sd.systemctl(['restart', 'demo-updater.service']);
      mkdirSync(path.join(w.dir, 'x'), { recursive: true });
      let r;
      for (let i = 0; i < 100; i++) {
        r = await w.run(['update', '--version', '1.1.4']);
        if (r.code === 7) break;
        await sleep(100);
      }
      assert.equal(r?.code, 7, r?.stderr);
      assert.match(r?.stderr ?? '', /E_LOCKED: another cutover operation holds .*\(pid \d+, update since/);
      w.clearFaults();
      await sd.waitFor('demo-updater.service', (p) => /installed v1\.1\.4/.test(p.StatusText), 90_000);
    });

    test('STOPPING on shutdown, clean exit', async () => {
      const stop = await sd.systemctl(['stop', 'demo-updater.service']);
      assert.equal(stop.code, 0, stop.stderr);
      const s = await sd.show('demo-updater.service', ['ActiveState', 'Result']);
      assert.equal(s.ActiveState, 'inactive');
      assert.equal(s.Result, 'success');
      if (sd.journald) assert.match(await sd.journal('demo-updater.service'), /stopping/);
    });
  });

  test('an old process that keeps answering on the port fails the gate', async () => {
    // The classic: the server is a child that survives its unit's restart (KillMode=process).
    mkdirSync(path.join(sd.unitDir, 'demo.service.d'), { recursive: true });
    writeFileSync(path.join(sd.unitDir, 'demo.service.d', 'leak.conf'), '[Service]\nKillMode=process\n');
    await sd.daemonReload();
    await release('1.1.5', { leak: true });
    let r = await w.run(['update', '--version', '1.1.5']);
    assert.equal(r.code, 0, r.stderr);
    await release('1.1.6', { retryBind: true });
    r = await w.run(['update', '--version', '1.1.6']);
    assert.equal(r.code, 8, r.stderr);
    assert.match(r.stderr, /reports version "1\.1\.5", expected 1\.1\.6/);
    assert.equal(current(), 'releases/v1.1.5');
    await sd.systemctl(['kill', '--kill-who=all', '--signal=SIGKILL', 'demo.service']);
  });
});
