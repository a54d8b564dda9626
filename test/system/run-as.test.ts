import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { RunUser } from '../../src/database/driver.ts';
import { describeRun, runAs, type RunAsOptions } from '../../src/system/run-as.ts';
import { createAccount, idsOf, removeAccount } from '../helpers/accounts.ts';

let dir = '';
let run = '';
let account = '';
let user: RunUser;
let logs = 0;

before(() => {
  account = createAccount();
  user = { name: account, ...idsOf(account) };
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'cutover-run-as-')));
  // mkdtemp made it 0700: the account must pass through to reach its scripts.
  chmodSync(dir, 0o755);
  mkdirSync(path.join(dir, 'bin'));
  mkdirSync(path.join(dir, 'logs'), { mode: 0o700 });
  // The one place the account may write (pid files).
  run = path.join(dir, 'run');
  mkdirSync(run);
  chownSync(run, user.uid, user.gid);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
  removeAccount(account);
});

/** A shell script at bin/<name>, executable by everyone. */
function script(name: string, body: string): string {
  const file = path.join(dir, 'bin', name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return `bin/${name}`;
}

function options(argv: string[], more: Partial<RunAsOptions> = {}): RunAsOptions {
  return { argv, cwd: dir, user, env: {}, timeoutMs: 15_000, logFile: path.join(dir, 'logs', `run-${++logs}.log`), ...more };
}

async function waitFor(what: string, ready: () => boolean, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!ready()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Is `pid` still the running `sleep <seconds>`? (A zombie is dead: nothing here may reap orphans.) */
function sleeping(pid: number, seconds: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') === `sleep\0${seconds}\0`;
  } catch {
    return false;
  }
}

/** A script that leaves a grandchild `sleep <a>` and becomes `sleep <b>`, after writing both pids to `file`. */
function hangingScript(name: string, a: number, b: number, prelude = ''): string {
  return script(name, `${prelude}\nsleep ${a} &\necho $! > "$1.tmp"\necho $$ >> "$1.tmp"\nmv "$1.tmp" "$1"\nexec sleep ${b}`);
}

function pidsIn(file: string): number[] {
  const pids = readFileSync(file, 'utf8').trim().split('\n').map(Number);
  assert.equal(pids.length, 2);
  return pids;
}

test('runs as the account: its uid and gid, no other group, exactly the fixed environment plus the extras', async () => {
  const prog = script(
    'whoami',
    `id -u; id -g; id -G
awk '/^Groups:/ { print "supplementary groups: " NF - 1 }' /proc/self/status
echo --env--
tr '\\0' '\\n' < /proc/$$/environ`,
  );
  process.env.CUTOVER_CANARY = 'leaked';
  let r;
  try {
    r = await runAs(options([prog], { env: { CUTOVER_TO: '1.2.0', DATABASE_URL: 'postgres:///demo' }, captureStdout: true }));
  } finally {
    delete process.env.CUTOVER_CANARY;
  }
  assert.equal(r.exitCode, 0, r.tail);
  const [ids = '', env = ''] = (r.stdout ?? '').split('--env--\n');
  const { uid, gid } = idsOf(account);
  assert.equal(ids, `${uid}\n${gid}\n${gid}\nsupplementary groups: 0\n`);
  const vars = Object.fromEntries(
    env
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.deepEqual(vars, {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    HOME: '/',
    USER: account,
    LOGNAME: account,
    CUTOVER_TO: '1.2.0',
    DATABASE_URL: 'postgres:///demo',
  });
});

test('runs in cwd, where a relative argv[0] is resolved; the arguments pass as they are', async () => {
  const prog = script('where', 'pwd -P; echo "$0"; for a in "$@"; do echo "[$a]"; done');
  const r = await runAs(options([prog, 'one two', '$HOME'], { captureStdout: true }));
  assert.equal(r.stdout, `${dir}\n${dir}/bin/where\n[one two]\n[$HOME]\n`);
});

test('stdin is /dev/null: a program reading it gets end of input at once', async () => {
  const prog = script('reader', 'input=$(cat); echo "input=[$input]"; readlink /proc/$$/fd/0');
  const r = await runAs(options([prog], { captureStdout: true }));
  assert.equal(r.exitCode, 0);
  assert.equal(r.timedOut, false);
  assert.equal(r.stdout, 'input=[]\n/dev/null\n');
});

test('a non-zero exit is reported with its status and the last lines of output', async () => {
  const lines = Array.from({ length: 30 }, (_, i) => `echo step ${i + 1}`).join('\n');
  const prog = script('fails', `${lines}\necho 'relation "users" already exists' >&2\nexit 3`);
  const r = await runAs(options([prog]));
  assert.equal(r.exitCode, 3);
  assert.equal(r.signal, null);
  assert.equal(describeRun(r), 'exited with status 3');
  const tail = r.tail.split('\n');
  assert.equal(tail.length, 20);
  assert.equal(tail.at(-1), 'relation "users" already exists');
  assert.equal(tail.at(-2), 'step 30');
  assert.equal(tail[0], 'step 12');
  assert.match(readFileSync(r.logFile, 'utf8'), /^step 1\n[^]*step 30\n/);
});

test('a program that cannot be started gives a result that says why, in the tail and in the log', async () => {
  writeFileSync(path.join(dir, 'bin', 'not-executable'), '#!/bin/sh\n', { mode: 0o644 });
  for (const [prog, code] of [
    ['bin/missing', 'ENOENT'],
    ['bin/not-executable', 'EACCES'],
    ['bin/not-executable/below-a-file', 'ENOTDIR'],
  ] as const) {
    const r = await runAs(options([prog]));
    assert.equal(r.exitCode, null, prog);
    assert.equal(r.signal, null, prog);
    assert.equal(describeRun(r), 'could not be started');
    assert.equal(r.tail, `[cutover: cannot run ${prog} in ${dir} as ${account}: ${code}]`);
    assert.equal(readFileSync(r.logFile, 'utf8'), `${r.tail}\n`);
  }
});

test('on timeout the whole group gets SIGTERM: the program and its grandchild are gone', async () => {
  const pids = path.join(run, 'hang.pids');
  const r = await runAs(options([hangingScript('hang', 611, 612), pids], { timeoutMs: 1500 }));
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 'SIGTERM');
  assert.equal(describeRun(r), 'timed out after 1.5s and was killed');
  assert.ok(r.ms >= 1400 && r.ms < 10_000, `took ${r.ms}ms`);
  const [grandchild = 0, leader = 0] = pidsIn(pids);
  await waitFor('both sleeps to end', () => !sleeping(grandchild, 611) && !sleeping(leader, 612));
});

test('a group that ignores SIGTERM is SIGKILLed after the grace; pipes held from outside the group are then cut', async () => {
  const pids = path.join(run, 'stubborn.pids');
  // `setsid` takes this sleep out of the group, with the pipes: the run must not wait for it.
  const prelude = `trap '' TERM\nsetsid sleep 623 &\necho $! > "$1.escaped"`;
  const r = await runAs(options([hangingScript('stubborn', 621, 622, prelude), pids], { timeoutMs: 500 }));
  const escaped = Number(readFileSync(`${pids}.escaped`, 'utf8'));
  try {
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    // timeout + SIGKILL grace + pipe grace
    assert.ok(r.ms >= 6400 && r.ms < 16_000, `took ${r.ms}ms`);
    const [grandchild = 0, leader = 0] = pidsIn(pids);
    await waitFor('both sleeps to end', () => !sleeping(grandchild, 621) && !sleeping(leader, 622));
    assert.ok(sleeping(escaped, 623), 'the escaped sleep is out of reach of the group kill');
  } finally {
    if (sleeping(escaped, 623)) process.kill(escaped, 'SIGKILL');
  }
});

test('what the program leaves behind in its group is killed when it exits', async () => {
  const pids = path.join(run, 'leftover.pid');
  const prog = script('leftover', `sleep 641 &\necho $! > "${pids}"\necho migrated`);
  const r = await runAs(options([prog]));
  assert.equal(r.exitCode, 0);
  assert.equal(describeRun(r), 'exited with status 0');
  assert.equal(r.tail, 'migrated');
  // SIGTERM did it: no wait for the SIGKILL grace.
  assert.ok(r.ms < 4000, `took ${r.ms}ms`);
  const pid = Number(readFileSync(pids, 'utf8'));
  await waitFor('the leftover sleep to end', () => !sleeping(pid, 641));
});

test('the operator interrupt kills the group and says so', async () => {
  const pids = path.join(run, 'interrupted.pids');
  const ac = new AbortController();
  const running = runAs(options([hangingScript('interrupted', 631, 632), pids], { signal: ac.signal }));
  await waitFor('the pid file', () => existsSync(pids));
  ac.abort();
  const r = await running;
  assert.equal(r.interrupted, true);
  assert.equal(r.timedOut, false);
  assert.equal(describeRun(r), 'was interrupted');
  const [grandchild = 0, leader = 0] = pidsIn(pids);
  await waitFor('both sleeps to end', () => !sleeping(grandchild, 631) && !sleeping(leader, 632));

  // Interrupted before it started: it never starts.
  const marker = path.join(run, 'started-anyway');
  const early = await runAs(options([script('too-late', `touch ${marker}`)], { signal: AbortSignal.abort() }));
  assert.equal(early.interrupted, true);
  assert.equal(existsSync(marker), false);
});

test('100 MB of output: the log keeps the first and last MiB around one omission line, memory stays bounded', async () => {
  const MiB = 1024 * 1024;
  const total = 100_000_000;
  const first = 'first line\n';
  const last = '\nlast line\n';
  const middle = total - first.length - last.length;
  const prog = script(
    'chatty',
    `printf '${first.trim()}\\n'\nyes 'the middle of a long migration, line after line' | head -c ${middle}\nprintf '\\n${last.trim()}\\n'`,
  );
  // A live stream that never drains: the copy must skip, not buffer.
  const stuck = new Writable({ highWaterMark: 1024, write: () => undefined });
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  let r;
  try {
    r = await runAs(options([prog], { live: stuck, timeoutMs: 60_000 }));
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  assert.equal(r.exitCode, 0, r.tail);
  assert.equal(r.outputBytes, total);
  assert.equal(r.truncated, true);
  const log = readFileSync(r.logFile);
  const text = log.toString('latin1');
  assert.ok(text.startsWith(`${first}the middle of a long migration, line after line\n`));
  assert.match(text.slice(-100), /(line after line\n)+[a-z ,]*\nlast line\n$/);
  const marker = /\n?\[cutover: (\d+) bytes omitted\]\n/g;
  const found = [...text.matchAll(marker)];
  assert.equal(found.length, 1);
  assert.equal(Number(found[0]?.[1]), total - 2 * MiB);
  assert.equal(log.length, 2 * MiB + Buffer.byteLength(found[0]?.[0] ?? ''));
  assert.equal(found[0]?.index, MiB);
  assert.equal(r.tail.split('\n').at(-1), 'last line');
  assert.ok(stuck.writableLength < MiB, `the live stream holds ${stuck.writableLength} bytes`);
  assert.ok(peak - before < 64 * MiB, `RSS grew by ${Math.round((peak - before) / MiB)} MiB`);
});

test('captureStdout returns stdout alone; the log and the live copy get both streams, every byte', async () => {
  const prog = script('pending', 'echo 0042_add_index\necho "warning: deprecated" >&2\necho 0043_drop_column');
  const live = new PassThrough();
  const seen: Buffer[] = [];
  live.on('data', (c: Buffer) => seen.push(c));
  const r = await runAs(options([prog], { captureStdout: true, live }));
  assert.equal(r.stdout, '0042_add_index\n0043_drop_column\n');
  const log = readFileSync(r.logFile, 'utf8');
  assert.deepEqual(log.trim().split('\n').sort(), ['0042_add_index', '0043_drop_column', 'warning: deprecated']);
  assert.equal(Buffer.concat(seen).toString('utf8'), log);
  assert.equal(r.outputBytes, Buffer.byteLength(log));
  assert.equal(r.truncated, false);
  assert.equal((await runAs(options([prog]))).stdout, undefined);
});

test('the log is root-owned 0640 even over a planted file, and never followed through a symlink', async () => {
  const prog = script('hello', 'echo hello');
  const planted = path.join(run, 'planted.log');
  writeFileSync(planted, 'old content that is longer than the new\n', { mode: 0o666 });
  chownSync(planted, user.uid, user.gid);
  const r = await runAs(options([prog], { logFile: planted }));
  const st = statSync(planted);
  assert.equal(st.mode & 0o7777, 0o640);
  assert.equal(st.uid, 0);
  assert.equal(st.gid, 0);
  assert.equal(readFileSync(r.logFile, 'utf8'), 'hello\n');

  const target = path.join(dir, 'target');
  writeFileSync(target, 'keep me\n');
  const link = path.join(run, 'link.log');
  symlinkSync(target, link);
  await assert.rejects(runAs(options([prog], { logFile: link })), { code: 'E_UNSAFE_PATH' });
  assert.equal(readFileSync(target, 'utf8'), 'keep me\n');
  assert.ok(lstatSync(link).isSymbolicLink());
});

test('root is refused before anything is spawned or written', async () => {
  const marker = path.join(dir, 'ran-as-root');
  const prog = script('as-root', `touch ${marker}`);
  const logFile = path.join(dir, 'logs', 'root.log');
  await assert.rejects(runAs(options([prog], { user: { name: 'root', uid: 0, gid: 0 }, logFile })), (e: any) => {
    assert.equal(e.code, 'E_CONFIG');
    assert.match(e.message, /^refusing to run bin\/as-root as root/);
    return true;
  });
  assert.equal(existsSync(marker), false);
  assert.equal(existsSync(logFile), false);
});
