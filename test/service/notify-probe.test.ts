/**
 * How a Node process that is a systemd Type=notify service talks sd_notify on systemd 252.
 * Node has no AF_UNIX datagram sockets, so the probe spawns `systemd-notify --pid=<own pid> …`:
 * as root it may put the main PID in the message's credentials, which the default
 * NotifyAccess=main accepts. Under User= it may not, and NotifyAccess=all is needed.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startSystemd, systemdAvailable, type Systemd } from '../helpers/systemd.ts';

const avail = systemdAvailable();
let sd: Systemd;
let probe: string;

// READY at start; then, by mode: `ping` sends WATCHDOG=1 with a STATUS every 500 ms, `silent`
// sends nothing more. SIGUSR1 makes it announce STOPPING=1 and exit a little later on its own.
const PROBE = `
import { spawnSync } from 'node:child_process';
const notify = (...fields) => {
  const r = spawnSync('systemd-notify', [\`--pid=\${process.pid}\`, ...fields], { encoding: 'utf8' });
  if (r.status !== 0) console.log('systemd-notify failed', r.status, r.stderr.trim());
};
console.log(\`probe pid \${process.pid} WATCHDOG_USEC=\${process.env.WATCHDOG_USEC} WATCHDOG_PID=\${process.env.WATCHDOG_PID}\`);
notify('READY=1', 'STATUS=ready');
let n = 0;
const timer = setInterval(() => { if (process.argv[2] === 'ping') notify('WATCHDOG=1', \`STATUS=tick \${++n}\`); }, 500);
process.on('SIGUSR1', () => {
  clearInterval(timer);
  notify('STOPPING=1', 'STATUS=draining');
  setTimeout(() => process.exit(0), 1500);
});
`;

function unit(mode: 'ping' | 'silent', extra = ''): string {
  return `[Service]
Type=notify
ExecStart=${process.execPath} ${probe} ${mode}
WatchdogSec=2
TimeoutStartSec=3
${extra}
`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  if (!avail.ok) return;
  sd = await startSystemd();
  probe = path.join(sd.workDir, 'notify-probe.mjs');
  writeFileSync(probe, PROBE, { mode: 0o644 });
  sd.writeUnit('probe-ping.service', unit('ping'));
  sd.writeUnit('probe-silent.service', unit('silent'));
  sd.writeUnit('probe-user-main.service', unit('ping', 'User=nobody'));
  sd.writeUnit('probe-user-all.service', unit('ping', 'User=nobody\nNotifyAccess=all'));
  await sd.daemonReload();
});

after(() => sd?.stop());

test('READY and STATUS arrive; watchdog pings keep a WatchdogSec=2 unit up, silence gets it killed', async (t) => {
  if (!avail.ok) {
    t.skip(avail.why);
    return;
  }
  const start = await sd.systemctl(['start', 'probe-ping.service', 'probe-silent.service']);
  assert.equal(start.code, 0, start.stderr);
  for (const u of ['probe-ping.service', 'probe-silent.service']) {
    const p = await sd.show(u, ['ActiveState', 'NotifyAccess', 'WatchdogUSec', 'MainPID']);
    assert.deepEqual({ ...p, MainPID: Number(p.MainPID) > 1 }, { ActiveState: 'active', NotifyAccess: 'main', WatchdogUSec: '2s', MainPID: true }, u);
  }
  const pingPid = (await sd.show('probe-ping.service', ['MainPID'])).MainPID;

  await sleep(5500);
  const ping = await sd.show('probe-ping.service', ['ActiveState', 'Result', 'MainPID', 'NRestarts', 'StatusText']);
  assert.equal(ping.ActiveState, 'active');
  assert.equal(ping.MainPID, pingPid, 'the same process, never restarted');
  assert.match(ping.StatusText, /^tick \d+$/);
  const silent = await sd.show('probe-silent.service', ['ActiveState', 'Result', 'StatusText']);
  assert.deepEqual(silent, { ActiveState: 'failed', Result: 'watchdog', StatusText: 'ready' });
  if (sd.journald) assert.match(await sd.journal('probe-silent.service'), /Watchdog timeout \(limit 2s\)!/);
});

test('STOPPING=1 moves the unit to deactivating until the process exits', async (t) => {
  if (!avail.ok) {
    t.skip(avail.why);
    return;
  }
  const kill = await sd.systemctl(['kill', '--kill-who=main', '--signal=SIGUSR1', 'probe-ping.service']);
  assert.equal(kill.code, 0, kill.stderr);
  const draining = await sd.waitFor('probe-ping.service', (p) => p.StatusText === 'draining', 3000);
  assert.equal(draining.ActiveState, 'deactivating');
  const done = await sd.waitFor('probe-ping.service', (p) => p.ActiveState !== 'deactivating', 5000);
  assert.deepEqual([done.ActiveState, done.Result], ['inactive', 'success']);
});

test('under User= the credentials cannot name the main PID: NotifyAccess=all is needed', async (t) => {
  if (!avail.ok) {
    t.skip(avail.why);
    return;
  }
  const [main, all] = await Promise.all([sd.systemctl(['start', 'probe-user-main.service']), sd.systemctl(['start', 'probe-user-all.service'])]);
  assert.notEqual(main.code, 0, 'NotifyAccess=main never sees READY');
  assert.equal((await sd.show('probe-user-main.service', ['Result'])).Result, 'timeout');
  if (sd.journald) assert.match(await sd.journal('probe-user-main.service'), /reception only permitted for main PID/);
  assert.equal(all.code, 0, all.stderr);
  await sleep(2500);
  const p = await sd.show('probe-user-all.service', ['ActiveState', 'StatusText']);
  assert.equal(p.ActiveState, 'active', 'watchdog pings accepted from the helper process');
  assert.match(p.StatusText, /^tick \d+$/);
});
