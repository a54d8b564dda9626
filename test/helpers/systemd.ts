import { setTimeout as setTimeoutPromise } from 'node:timers/promises';
/**
 * A real systemd (the host's /lib/systemd/systemd) booted as PID 1 of a private PID, mount and
 * cgroup namespace, for tests that restart units, watch Type=notify readiness and read the journal.
 *
 * Inside the namespace: tmpfs on /tmp, /run and /var/log/journal, a fixed /etc/machine-id, a fresh
 * cgroup2 tree rooted at a cgroup made for this boot, SYSTEMD_UNIT_PATH = the caller's unit folder
 * plus stub targets and a journald (volatile storage). Nothing else of the host is started.
 * The file system outside those mounts (and the network) is the host's: whatever a unit or an
 * in-namespace command must see has to live outside /tmp, e.g. under `workDir`.
 */
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const SYSTEMD = '/lib/systemd/systemd';
const JOURNALD = '/lib/systemd/systemd-journald';
const BASE = '/var/tmp';
const BOOT_TIMEOUT_MS = 20_000;
const IN_NS_PATH = `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  /** Added to a minimal environment (PATH with this Node first, HOME, LANG, no pager, no colours). */
  env?: Record<string, string>;
  /** Working directory inside the namespace; default `/`. */
  cwd?: string;
  /** SIGKILL the command after this long; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A command running inside the namespace, behind `nsenter` (which does not forward signals). */
export interface Spawned {
  /** The `nsenter` process; its exit code/signal are the command's. */
  child: ChildProcess;
  /** Host PID of the command itself (nsenter's child). */
  pid(): Promise<number>;
  /** Signal the command itself (not nsenter). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Output so far. */
  output(): { stdout: string; stderr: string };
  done: Promise<ExecResult>;
}

export const DEFAULT_PROPS = ['ActiveState', 'SubState', 'Result', 'MainPID', 'NRestarts', 'StatusText', 'ExecMainStatus'] as const;
export type DefaultProp = (typeof DEFAULT_PROPS)[number];

export interface Systemd {
  /** Host PID of the namespaced systemd (PID 1 inside). */
  readonly pid: number;
  /** Scratch folder under /var/tmp, visible at the same path inside the namespace; removed by stop(). */
  readonly workDir: string;
  readonly unitDir: string;
  /** Boot script errors; stop() appends the whole journal here. */
  readonly logFile: string;
  /** Whether systemd-journald runs inside, so that `journal()` works. */
  readonly journald: boolean;
  readonly bootMs: number;
  /** Host path of this boot's cgroup (its cgroup.procs lists host PIDs); removed by stop(). */
  readonly cgroup: string;
  /** Write a unit file into unitDir (call daemonReload() after changing a loaded unit). */
  writeUnit(name: string, text: string): string;
  systemctl(args: string[], opts?: ExecOptions): Promise<ExecResult>;
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(cmd: string, args: string[], opts?: Omit<ExecOptions, 'timeoutMs'>): Spawned;
  /** `systemctl show -p …` as a record; a property systemd does not know comes back as ''. */
  show<P extends string>(unit: string, props: readonly P[]): Promise<Record<P, string>>;
  /** Poll show() (DEFAULT_PROPS unless told) until predicate holds; throws with the last properties on timeout. */
  waitFor<P extends string = DefaultProp>(
    unit: string,
    predicate: (p: Record<P, string>) => boolean,
    timeoutMs: number,
    props?: readonly P[],
  ): Promise<Record<P, string>>;
  daemonReload(): Promise<void>;
  /** The unit's journal (`-o cat` unless told), after `journalctl --sync`. */
  journal(unit: string, opts?: { output?: string }): Promise<string>;
  /** Stop services, exit systemd, kill whatever is left, remove the cgroup and workDir. Idempotent. */
  stop(opts?: { keepWorkDir?: boolean }): Promise<void>;
}

let availability: { ok: boolean; why?: string } | undefined;

/** Whether this machine can boot a namespaced systemd; `why` says what is missing. Cached. */
export function systemdAvailable(): { ok: boolean; why?: string } {
  availability ??= checkAvailable();
  return availability;
}

function checkAvailable(): { ok: boolean; why?: string } {
  if (process.platform !== 'linux') return { ok: false, why: 'needs Linux' };
  if (process.getuid?.() !== 0) return { ok: false, why: 'needs root (namespaces, mounts, cgroups)' };
  for (const bin of [SYSTEMD, JOURNALD]) {
    try {
      accessSync(bin, constants.X_OK);
    } catch {
      return { ok: false, why: `${bin} is missing (apt-get install systemd)` };
    }
  }
  for (const tool of ['unshare', 'nsenter', 'setpriv', 'systemctl', 'journalctl']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) return { ok: false, why: `${tool} is not on PATH` };
  }
  if (!cgroup2Mount()) return { ok: false, why: 'no cgroup2 file system is mounted' };
  if (!existsSync(BASE)) return { ok: false, why: `${BASE} does not exist` };
  const probe = spawnSync(
    'unshare',
    [
      '--pid',
      '--fork',
      '--kill-child',
      '--mount',
      '--mount-proc',
      '--propagation',
      'private',
      '--cgroup',
      'sh',
      '-c',
      'mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /run',
    ],
    {
      encoding: 'utf8',
      timeout: 5000,
    },
  );
  if (probe.status !== 0) return { ok: false, why: `cannot create namespaces: ${(probe.stderr || probe.error?.message || `exit ${probe.status}`).trim()}` };
  return { ok: true };
}

function cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre?.split(' ')[4];
  }
  return undefined;
}

function ownCgroup2Path(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line ? line.slice(3) : '/';
}

const STUB_TARGETS = [
  'sysinit',
  'basic',
  'sockets',
  'timers',
  'paths',
  'slices',
  'local-fs',
  'remote-fs',
  'network',
  'network-online',
  'nss-lookup',
  'time-sync',
  'multi-user',
  'shutdown',
  'exit',
];

function writeStubs(dir: string): void {
  mkdirSync(dir);
  // Empty targets, so that units with the default dependencies (and the project's own unit files,
  // unmodified) load and start; only default.target pulls anything in: the journal.
  for (const t of STUB_TARGETS) writeFileSync(path.join(dir, `${t}.target`), `[Unit]\nDescription=stub ${t}.target\n`);
  writeFileSync(path.join(dir, 'default.target'), '[Unit]\nDescription=cutover test default target\nWants=systemd-journald.service\n');
  // The host's journald units, minus /dev/log (which would be created on the host's /dev) and the
  // audit netlink socket (which would receive the host's audit stream).
  writeFileSync(
    path.join(dir, 'systemd-journald.socket'),
    `[Unit]
Description=Journal Socket
DefaultDependencies=no

[Socket]
ListenDatagram=/run/systemd/journal/socket
ListenStream=/run/systemd/journal/stdout
PassCredentials=yes
PassSecurity=yes
ReceiveBuffer=8M
Service=systemd-journald.service
SocketMode=0666
Timestamping=us
`,
  );
  writeFileSync(
    path.join(dir, 'systemd-journald.service'),
    `[Unit]
Description=Journal Service
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket

[Service]
ExecStart=${JOURNALD}
Type=notify
Sockets=systemd-journald.socket
Restart=always
RestartSec=0
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
StandardOutput=null
FileDescriptorStoreMax=4224
`,
  );
}

/**
 * Runs as PID 1 of the new namespaces, then becomes systemd. /tmp is replaced first: a systemd
 * that saw the host's /tmp would clean it. `set -e` stops here if any mount fails.
 */
const INNER = `set -eu
W=$1 UNITS=$2
# Folders under the host's /tmp that must stay visible (a checkout of this repository, with the
# Node that runs the tests): bind them aside, then back at the same path on the private /tmp.
i=0
while IFS= read -r keep; do
  [ -n "$keep" ] || continue
  i=$((i + 1)); mkdir -p "$W/keep/$i"; mount --bind "$keep" "$W/keep/$i"
done < "$W/keep-paths"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mountpoint -q /tmp
i=0
while IFS= read -r keep; do
  [ -n "$keep" ] || continue
  i=$((i + 1)); mkdir -p "$keep"; mount --bind "$W/keep/$i" "$keep"
done < "$W/keep-paths"
mount -t tmpfs -o mode=755 tmpfs /run
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=2755 tmpfs /var/log/journal; fi
mount --bind "$W/machine-id" /etc/machine-id
umount -R -l /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /run/systemd/journald.conf.d /run/systemd/system.conf.d
printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\nForwardToKMsg=no\\nForwardToConsole=no\\nForwardToWall=no\\n' > /run/systemd/journald.conf.d/cutover-test.conf
printf '[Manager]\\nDefaultTimeoutStopSec=10s\\nShowStatus=no\\n' > /run/systemd/system.conf.d/cutover-test.conf
echo "namespace ready, exec systemd" >&2
exec env -i container=cutover-test SYSTEMD_LOG_COLOR=0 \\
  SYSTEMD_UNIT_PATH="$UNITS:$W/stub" \\
  SYSTEMD_GENERATOR_PATH="$W/empty" SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$W/empty" \\
  ${SYSTEMD} --system --log-target=journal --log-level=info
`;

interface Boot {
  unshare: ChildProcess;
  exited: Promise<void>;
}

/** Boot systemd; resolves once `systemctl is-system-running` says running or degraded. */
export async function startSystemd(opts: { unitDir?: string; timeoutMs?: number } = {}): Promise<Systemd> {
  const avail = systemdAvailable();
  if (!avail.ok) throw new Error(`systemd harness unavailable: ${avail.why}`);
  const started = Date.now();
  const cgroupParent = path.join(cgroup2Mount()!, ownCgroup2Path());
  sweepStale(cgroupParent);
  const workDir = mkdtempSync(path.join(BASE, 'cutover-sd-'));
  chmodSync(workDir, 0o755); // units running under User= must reach what tests put here
  const unitDir = opts.unitDir ?? path.join(workDir, 'units');
  mkdirSync(unitDir, { recursive: true });
  const realUnits = realpathSync(unitDir);
  for (const hidden of ['/tmp', '/run']) {
    if (realUnits === hidden || realUnits.startsWith(`${hidden}/`)) {
      rmSync(workDir, { recursive: true, force: true });
      throw new Error(`unitDir ${unitDir} is under ${hidden}, which the namespace replaces; put it under /var/tmp or the harness workDir`);
    }
  }
  writeStubs(path.join(workDir, 'stub'));
  mkdirSync(path.join(workDir, 'empty'));
  writeFileSync(path.join(workDir, 'machine-id'), `${randomBytes(16).toString('hex')}\n`);
  const inner = path.join(workDir, 'inner.sh');
  writeFileSync(inner, INNER);
  // This checkout and the Node running the tests, when they live under /tmp (CI may clone there).
  const keep = [...new Set([REPO_ROOT, path.resolve(path.dirname(process.execPath), '..')].map((p) => realpathSync(p)))]
    .filter((p) => p === '/tmp' || p.startsWith('/tmp/'))
    .filter((p, _i, all) => !all.some((q) => q !== p && p.startsWith(`${q}/`)));
  writeFileSync(path.join(workDir, 'keep-paths'), keep.map((p) => `${p}\n`).join(''));
  const logFile = path.join(workDir, 'systemd.log');

  const cgroup = path.join(cgroupParent, path.basename(workDir));
  mkdirSync(cgroup);

  const logFd = openSync(logFile, 'a');
  // sh moves itself into the new cgroup (so the cgroup namespace is rooted there), then becomes
  // unshare; setpriv makes the kernel SIGKILL unshare if this test process dies, and --kill-child
  // then takes systemd (and with it the whole PID namespace) down.
  const unshare = spawnChild(
    'sh',
    [
      '-c',
      'echo $$ > "$1/cgroup.procs" && exec setpriv --pdeathsig KILL unshare --pid --fork --kill-child --mount --mount-proc --propagation private --cgroup sh "$2" "$3" "$4"',
      'sh',
      cgroup,
      inner,
      workDir,
      realUnits,
    ],
    { stdio: ['ignore', logFd, logFd], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
  );
  closeSync(logFd);
  const exited = new Promise<void>((resolve) => unshare.once('close', () => resolve()));
  const boot: Boot = { unshare, exited };

  let sdPid = 0;
  const guard = (): void => {
    // Last resort when the test process exits without stop(): take the namespace down.
    try {
      if (sdPid) process.kill(sdPid, 'SIGKILL');
      unshare.kill('SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', guard);

  const fail = async (why: string): Promise<never> => {
    guard();
    await within(exited, 5000);
    removeCgroup(cgroup);
    const log = readFileSync(logFile, 'utf8');
    process.off('exit', guard);
    throw new Error(`systemd did not boot: ${why}\n--- ${logFile} ---\n${log}`);
  };

  const deadline = started + (opts.timeoutMs ?? BOOT_TIMEOUT_MS);
  while (!sdPid) {
    if (unshare.exitCode !== null || unshare.signalCode !== null) return fail(`unshare exited (${unshare.exitCode ?? unshare.signalCode})`);
    if (Date.now() > deadline) return fail('no systemd process appeared');
    sdPid = systemdChild(unshare.pid!);
    if (!sdPid) await sleep(20);
  }
  const sd = new NamespacedSystemd(sdPid, workDir, realUnits, logFile, cgroup, boot, guard);
  let state = '';
  while (!['running', 'degraded'].includes(state)) {
    if (unshare.exitCode !== null || unshare.signalCode !== null) return fail(`systemd exited (${unshare.exitCode ?? unshare.signalCode})`);
    if (Date.now() > deadline) return fail(`is-system-running still says '${state}'`);
    await sleep(25);
    state = (await sd.systemctl(['is-system-running'], { timeoutMs: 5000 })).stdout.trim();
  }
  const journald = (await sd.systemctl(['is-active', 'systemd-journald.service'])).stdout.trim() === 'active';
  sd.ready(journald, Date.now() - started);
  return sd;
}

/** The child of unshare once it has become systemd. */
function systemdChild(unsharePid: number): number {
  let children: string;
  try {
    children = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim();
  } catch {
    return 0;
  }
  for (const c of children.split(/\s+/).filter(Boolean)) {
    try {
      if (readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'systemd') return Number(c);
    } catch {
      // raced with exec or exit
    }
  }
  return 0;
}

/**
 * A test process killed before stop() takes its systemd with it (see setpriv below) but leaves an
 * empty cgroup tree and its workDir; remove those once they are a minute old and hold no process.
 */
function sweepStale(cgroupParent: string): void {
  for (const name of readdirSync(cgroupParent)) {
    if (!name.startsWith('cutover-sd-')) continue;
    const dir = path.join(cgroupParent, name);
    try {
      if (Date.now() - statSync(dir).mtimeMs < 60_000 || hasProcesses(dir)) continue;
      removeCgroup(dir);
      rmSync(path.join(BASE, name), { recursive: true, force: true });
    } catch {
      // another run is sweeping or using it; leave it
    }
  }
}

function hasProcesses(dir: string): boolean {
  if (readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim()) return true;
  return readdirSync(dir, { withFileTypes: true }).some((d) => d.isDirectory() && hasProcesses(path.join(dir, d.name)));
}

/** Remove the boot's cgroup tree, deepest first; kill anything still in it (there should be none). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  const kids = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
  for (const k of kids) removeCgroup(path.join(dir, k.name));
  const procs = readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim();
  if (procs) {
    if (existsSync(path.join(dir, 'cgroup.kill'))) writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    else for (const p of procs.split('\n')) process.kill(Number(p), 'SIGKILL');
  }
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 100) throw e;
      spawnSync('sleep', ['0.02']);
    }
  }
}

/** Wait for p, but no longer than ms. */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (t = setTimeout(resolve, ms)))]);
  clearTimeout(t);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return setTimeoutPromise(ms, undefined, signal ? { signal } : {});
}

class NamespacedSystemd implements Systemd {
  readonly pid: number;
  readonly workDir: string;
  readonly unitDir: string;
  readonly logFile: string;
  journald = false;
  bootMs = 0;
  readonly cgroup: string;
  private readonly boot: Boot;
  private readonly guard: () => void;
  private stopping: Promise<void> | undefined;

  constructor(pid: number, workDir: string, unitDir: string, logFile: string, cgroup: string, boot: Boot, guard: () => void) {
    this.pid = pid;
    this.workDir = workDir;
    this.unitDir = unitDir;
    this.logFile = logFile;
    this.cgroup = cgroup;
    this.boot = boot;
    this.guard = guard;
  }

  ready(journald: boolean, bootMs: number): void {
    this.journald = journald;
    this.bootMs = bootMs;
  }

  writeUnit(name: string, text: string): string {
    const file = path.join(this.unitDir, name);
    writeFileSync(file, text);
    return file;
  }

  private nsenterArgs(cmd: string, args: string[], cwd = '/'): string[] {
    return ['-t', String(this.pid), '-m', '-p', `--wd=${cwd}`, '--', cmd, ...args];
  }

  private env(extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: IN_NS_PATH, HOME: '/root', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', SYSTEMD_LOG_COLOR: '0', ...extra };
  }

  spawn(cmd: string, args: string[], opts: Omit<ExecOptions, 'timeoutMs'> = {}): Spawned {
    const child = spawnChild('nsenter', this.nsenterArgs(cmd, args, opts.cwd), { stdio: ['ignore', 'pipe', 'pipe'], env: this.env(opts.env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<ExecResult>((resolve) => {
      child.once('error', (e) => resolve({ code: 127, signal: null, stdout, stderr: stderr + e.message, timedOut: false }));
      child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, timedOut: false }));
    });
    const pid = async (): Promise<number> => {
      for (let i = 0; i < 250; i++) {
        const inner = child.pid ? firstChild(child.pid) : 0;
        if (inner) return inner;
        if (child.exitCode !== null || child.signalCode !== null) break;
        await sleep(20);
      }
      throw new Error(`no process inside the namespace for ${cmd}`);
    };
    const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
      process.kill(await pid(), signal);
    };
    if (opts.signal) {
      const onAbort = (): void => void kill('SIGKILL').catch(() => child.kill('SIGKILL'));
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener('abort', onAbort, { once: true });
      void done.then(() => opts.signal?.removeEventListener('abort', onAbort));
    }
    return {
      child,
      pid,
      kill,
      output: () => ({ stdout, stderr }),
      done,
    };
  }

  async exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const s = this.spawn(cmd, args, opts);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // Kill the command itself: killing nsenter would leave it running inside.
      s.kill('SIGKILL').catch(() => s.child.kill('SIGKILL'));
    }, opts.timeoutMs ?? 30_000);
    const r = await s.done;
    clearTimeout(timer);
    return { ...r, timedOut };
  }

  systemctl(args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec('systemctl', ['--no-pager', '--no-ask-password', ...args], opts);
  }

  async show<P extends string>(unit: string, props: readonly P[]): Promise<Record<P, string>> {
    const r = await this.systemctl(['show', ...props.flatMap((p) => ['-p', p]), '--', unit]);
    if (r.code !== 0) throw new Error(`systemctl show ${unit}: ${r.stderr.trim() || `exit ${r.code}`}`);
    const out = Object.fromEntries(props.map((p) => [p, ''])) as Record<P, string>;
    for (const line of r.stdout.split('\n')) {
      const eq = line.indexOf('=');
      const key = line.slice(0, eq);
      if (eq > 0 && (props as readonly string[]).includes(key)) out[key as P] = line.slice(eq + 1);
    }
    return out;
  }

  async waitFor<P extends string = DefaultProp>(
    unit: string,
    predicate: (p: Record<P, string>) => boolean,
    timeoutMs: number,
    props?: readonly P[],
  ): Promise<Record<P, string>> {
    const which = props ?? (DEFAULT_PROPS as readonly string[] as readonly P[]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.show(unit, which);
      if (predicate(p)) return p;
      if (Date.now() > deadline) throw new Error(`${unit} did not reach the expected state within ${timeoutMs} ms; last: ${JSON.stringify(p)}`);
      await sleep(50);
    }
  }

  async daemonReload(): Promise<void> {
    const r = await this.systemctl(['daemon-reload']);
    if (r.code !== 0) throw new Error(`daemon-reload: ${r.stderr.trim()}`);
  }

  async journal(unit: string, opts: { output?: string } = {}): Promise<string> {
    if (!this.journald) throw new Error('journald is not running inside the test systemd');
    await this.exec('journalctl', ['--sync'], { timeoutMs: 5000 });
    const r = await this.exec('journalctl', ['--no-pager', '-o', opts.output ?? 'cat', '-u', unit], { timeoutMs: 10_000 });
    return r.stdout;
  }

  stop(opts: { keepWorkDir?: boolean } = {}): Promise<void> {
    this.stopping ??= this.doStop(opts.keepWorkDir ?? !!process.env.CUTOVER_KEEP_SYSTEMD);
    return this.stopping;
  }

  private async doStop(keep: boolean): Promise<void> {
    const alive = (): boolean => this.boot.unshare.exitCode === null && this.boot.unshare.signalCode === null;
    if (alive()) {
      // Stop services in order first, so that their ExecStop= runs and PrivateTmp= folders under
      // the (shared) /var/tmp are removed; then exit without further ordering.
      const units = await this.systemctl(['list-units', '--type=service', '--state=active,activating,deactivating,reloading', '--plain', '--no-legend'], {
        timeoutMs: 5000,
      });
      const services = units.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[0] ?? '')
        .filter((u) => u.endsWith('.service') && u !== 'systemd-journald.service');
      if (services.length) await this.systemctl(['stop', '--', ...services], { timeoutMs: 15_000 });
      if (this.journald) {
        const j = await this.exec('journalctl', ['--no-pager', '-o', 'short-monotonic'], { timeoutMs: 10_000 });
        writeFileSync(this.logFile, `--- journal ---\n${j.stdout}`, { flag: 'a' });
      }
      await this.systemctl(['--force', 'exit'], { timeoutMs: 5000 });
      await within(this.boot.exited, 5000);
    }
    if (alive()) {
      // PID 1 of the namespace dies, and the kernel kills every process in it.
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await this.boot.exited;
    }
    removeCgroup(this.cgroup);
    process.off('exit', this.guard);
    if (!keep) rmSync(this.workDir, { recursive: true, force: true });
  }
}

function firstChild(pid: number): number {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    return first ? Number(first) : 0;
  } catch {
    return 0;
  }
}
