import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SystemdNotifier } from '../../src/daemon/notify.ts';
import { Systemctl } from '../../src/service/systemd.ts';
import { commandEnv, scrubEnvironment, SYSTEM_PATH, UNSAFE_UNDER_ROOT } from '../../src/system/commands.ts';

test('system commands are looked up in the fixed system PATH, whatever PATH says', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cutover-evil-'));
  writeFileSync(path.join(dir, 'flock'), '#!/bin/sh\necho evil\n');
  chmodSync(path.join(dir, 'flock'), 0o755);
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved ?? ''}`;
  try {
    const r = spawnSync('flock', ['--version'], { env: commandEnv(), encoding: 'utf8' });
    assert.match(r.stdout, /util-linux/);
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(commandEnv({ NOTIFY_SOCKET: '/run/x', GONE: undefined }), {
    PATH: SYSTEM_PATH,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    NOTIFY_SOCKET: '/run/x',
  });
});

test('scrubEnvironment: under euid 0 every listed variable goes and PATH is pinned; otherwise nothing changes', () => {
  const env: NodeJS.ProcessEnv = { PATH: '/evil', HOME: '/root', CUTOVER_CONFIG: '/etc/demo/cutover.toml' };
  for (const name of UNSAFE_UNDER_ROOT) env[name] = 'x';
  const user = { ...env };
  assert.deepEqual(scrubEnvironment(user, 1000), []);
  assert.deepEqual(user, env);
  const removed = scrubEnvironment(env, 0);
  assert.deepEqual(removed, [...UNSAFE_UNDER_ROOT]);
  assert.deepEqual(env, { PATH: SYSTEM_PATH, HOME: '/root', CUTOVER_CONFIG: '/etc/demo/cutover.toml' });
});

test('systemctl and systemd-notify are not taken from a hostile PATH', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cutover-evil-'));
  const marks = path.join(dir, 'marks');
  for (const t of ['systemctl', 'systemd-notify']) {
    writeFileSync(path.join(dir, t), `#!/bin/sh\necho "${t} $*" >> ${marks}\n`);
    chmodSync(path.join(dir, t), 0o755);
  }
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved ?? ''}`;
  try {
    // Without a systemd to talk to the real systemctl fails: the point is which one ran.
    await new Systemctl().state('demo.service').catch(() => undefined);
    await new SystemdNotifier({ NOTIFY_SOCKET: path.join(dir, 'notify'), PATH: process.env.PATH }).notify({ STATUS: 'x' });
    assert.equal(existsSync(marks) ? readFileSync(marks, 'utf8') : '', '');
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the launcher unsets exactly UNSAFE_UNDER_ROOT under root (the two lists stay in step)', () => {
  const launcher = readFileSync(path.join(import.meta.dirname, '..', '..', 'bin', 'cutover'), 'utf8');
  const m = /^\s*unset ((?:.*\\\n)*.*)$/m.exec(launcher);
  assert.ok(m?.[1], 'bin/cutover has an unset line');
  const names = m[1].replace(/\\\n/g, ' ').trim().split(/\s+/).sort();
  assert.deepEqual(names, [...UNSAFE_UNDER_ROOT].sort());
});
