import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startSystemd, systemdAvailable } from '../helpers/systemd.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the namespaced systemd runs units, restarts, rate-limits, and leaves the host alone', async (t) => {
  const avail = systemdAvailable();
  if (!avail.ok) {
    t.skip(avail.why);
    return;
  }
  // The host's /tmp, not tmpdir(): this is the folder a systemd without a private /tmp would clean.
  const canaryDir = mkdtempSync('/tmp/cutover-canary-');
  const canary = path.join(canaryDir, 'canary');
  writeFileSync(canary, 'still here\n');
  t.after(() => rmSync(canaryDir, { recursive: true, force: true }));

  const sd = await startSystemd();
  t.after(() => sd.stop());
  t.diagnostic(`booted in ${sd.bootMs} ms, journald ${sd.journald ? 'running' : 'absent'}`);

  assert.equal((await sd.exec('test', ['-e', canary])).code, 1, 'the namespace has its own /tmp');
  assert.equal((await sd.exec('cat', ['/proc/1/comm'])).stdout.trim(), 'systemd');

  // Default NotifyAccess=main is enough: systemd-notify (252) sends with its parent's PID, the
  // shell, which is the main PID (and stays so across `exec`).
  sd.writeUnit(
    'notify-smoke.service',
    `[Service]
Type=notify
ExecStart=/bin/sh -c 'echo smoke-started; systemd-notify --ready --status="up"; exec sleep infinity'
TimeoutStartSec=10
`,
  );
  // Two restart loops: one whose runs fail, one whose runs exit cleanly.
  for (const [name, exec] of [
    ['crashloop', '/bin/false'],
    ['cleanloop', '/bin/true'],
  ]) {
    sd.writeUnit(
      `${name}.service`,
      `[Unit]
StartLimitIntervalSec=60
StartLimitBurst=3

[Service]
ExecStart=${exec}
Restart=always
RestartSec=50ms
`,
    );
  }
  await sd.daemonReload();

  const start = await sd.systemctl(['start', 'notify-smoke.service']);
  assert.equal(start.code, 0, start.stderr);
  const first = await sd.show('notify-smoke.service', ['ActiveState', 'SubState', 'Type', 'StatusText', 'MainPID', 'NotifyAccess']);
  assert.equal(first.ActiveState, 'active');
  assert.equal(first.SubState, 'running');
  assert.equal(first.StatusText, 'up');
  assert.equal(first.NotifyAccess, 'main');
  assert.ok(Number(first.MainPID) > 1);
  const restart = await sd.systemctl(['restart', 'notify-smoke.service']);
  assert.equal(restart.code, 0, restart.stderr);
  const second = await sd.show('notify-smoke.service', ['ActiveState', 'MainPID']);
  assert.equal(second.ActiveState, 'active');
  assert.notEqual(second.MainPID, first.MainPID);
  // Host PIDs of the running unit, to check after stop() that nothing outlived the namespace.
  const hostPids = readFileSync(path.join(sd.cgroup, 'system.slice', 'notify-smoke.service', 'cgroup.procs'), 'utf8')
    .trim()
    .split('\n')
    .map(Number);
  assert.ok(hostPids.length > 0 && hostPids.every(alive));

  if (sd.journald) {
    const log = await sd.journal('notify-smoke.service');
    assert.equal(log.split('\n').filter((l) => l === 'smoke-started').length, 2, log);
  }

  // systemd 252 keeps the first failure's Result: a loop of failing runs that hits the start
  // limit ends failed with Result=exit-code (and NRestarts=burst), and only a loop of clean exits
  // shows Result=start-limit-hit. Either way a manual start is refused until reset-failed.
  await sd.systemctl(['start', 'crashloop.service', 'cleanloop.service']);
  const crashed = await sd.waitFor('crashloop.service', (p) => p.ActiveState === 'failed', 10_000);
  assert.equal(crashed.Result, 'exit-code');
  assert.equal(crashed.NRestarts, '3');
  const looped = await sd.waitFor('cleanloop.service', (p) => p.ActiveState === 'failed', 10_000);
  assert.equal(looped.Result, 'start-limit-hit');
  const refused = await sd.systemctl(['start', 'cleanloop.service']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /attempted too often/);
  for (const unit of ['crashloop.service', 'cleanloop.service']) {
    const reset = await sd.systemctl(['reset-failed', unit]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.deepEqual(await sd.show(unit, ['ActiveState', 'Result', 'NRestarts']), { ActiveState: 'inactive', Result: 'success', NRestarts: '0' });
  }
  assert.equal((await sd.systemctl(['start', 'cleanloop.service'])).code, 0, 'reset-failed also resets the start limit');

  await sd.stop();
  assert.equal(alive(sd.pid), false, 'systemd is gone');
  assert.deepEqual(hostPids.filter(alive), [], 'no unit process outlives the namespace');
  assert.equal(existsSync(sd.cgroup), false, 'the cgroup is removed');
  assert.equal(existsSync(sd.workDir), false, 'the work dir is removed');
  assert.equal(readFileSync(canary, 'utf8'), 'still here\n', "the host's /tmp is untouched");
});
