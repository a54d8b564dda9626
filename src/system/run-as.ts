/**
 * Runs a release's own program (its database migration, its `migrate_pending` lister) as the app's
 * unprivileged account, never as root: vendor code gets the account's uid and gid and no other
 * group, a fixed environment (nothing of the operator's, sudo's or root's), /dev/null as input and a
 * session and process group of its own, so that the timeout or the operator's interrupt ends all
 * of it, grandchildren included, with SIGTERM and then SIGKILL. Its combined output goes to a
 * root-owned log that keeps the first and the last MiB however much is written, and its last lines
 * come back for the error message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { formatDuration } from '../config/duration.ts';
import type { RunUser } from '../database/driver.ts';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { SYSTEM_PATH } from './commands.ts';

export interface RunAsOptions {
  /** argv[0] may be relative ("bin/migrate"): resolved against cwd. */
  argv: string[];
  cwd: string;
  /** The account to run as; uid 0 or gid 0 is refused (E_CONFIG) before anything is spawned or written. */
  user: RunUser;
  /** Variables added to the fixed base environment (CUTOVER_*, DATABASE_URL, …); they cannot replace the base ones. */
  env: Record<string, string>;
  timeoutMs: number;
  /** Combined stdout+stderr go here (created or truncated, mode 0640, owned by root, opened with O_NOFOLLOW). */
  logFile: string;
  /** Also copy output live to this stream (the CLI passes process.stderr when it is a TTY). */
  live?: NodeJS.WritableStream | undefined;
  /** The operator's interrupt: kills the process group like the timeout does. */
  signal?: AbortSignal | undefined;
  /** Collect stdout (not stderr) and return it, capped at 1 MiB (for `migrate_pending`). */
  captureStdout?: boolean;
  /** Told the child's pid (its process group's id) as soon as it runs: a caller killed meanwhile can still end it later. */
  onSpawn?: (pid: number) => void;
}

export interface RunAsResult {
  /** null when killed by a signal, or when the program could not be started (the tail says why). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The timeout the run had, for describeRun. */
  timeoutMs: number;
  interrupted: boolean;
  ms: number;
  logFile: string;
  /** The last ≤ 20 lines (≤ 4 KiB) of output, for error messages. */
  tail: string;
  /** Total bytes of output produced, and whether the log dropped a middle part. */
  outputBytes: number;
  truncated: boolean;
  stdout?: string;
}

/** The child's PATH: the system one, after the local directories a vendor's runtime is installed in. */
const APP_PATH = `/usr/local/sbin:/usr/local/bin:${SYSTEM_PATH}`;
const MiB = 1024 * 1024;
const HEAD_BYTES = MiB;
const TAIL_BYTES = MiB;
const STDOUT_CAP = MiB;
const TAIL_LINES = 20;
const TAIL_TEXT_BYTES = 4096;
/** Between SIGTERM and SIGKILL of the group: time for a migration to roll its transaction back. */
const KILL_GRACE_MS = 5000;
/** After SIGKILL and the child's exit: how long the pipes may stay open (held by a process that left the group). */
const PIPE_GRACE_MS = 1000;
/** setTimeout's limit: a longer delay would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export async function runAs(opts: RunAsOptions): Promise<RunAsResult> {
  const [program, ...args] = opts.argv;
  if (!program) throw new CutoverError('E_CONFIG', 'no program to run: the command is empty');
  const { user } = opts;
  if (user.uid === 0 || user.gid === 0) {
    throw new CutoverError('E_CONFIG', `refusing to run ${program} as root (account ${user.name} has uid ${user.uid}, gid ${user.gid})`, {
      hint: 'set `user` in the config to the unprivileged account the app runs as',
    });
  }
  const log = new OutputLog(opts.logFile);
  const started = performance.now();
  const end = await supervise(opts, path.resolve(opts.cwd, program), args, log);
  const truncated = log.close();
  return {
    ...end,
    timeoutMs: opts.timeoutMs,
    ms: Math.round(performance.now() - started),
    logFile: opts.logFile,
    tail: log.tail(),
    outputBytes: log.total,
    truncated,
  };
}

/** "exited with status 3" | "was killed by SIGKILL" | "timed out after 30m and was killed" | "was interrupted" | "could not be started" */
export function describeRun(r: RunAsResult): string {
  if (r.interrupted) return 'was interrupted';
  if (r.timedOut) return `timed out after ${formatDuration(r.timeoutMs)} and was killed`;
  if (r.signal) return `was killed by ${r.signal}`;
  if (r.exitCode !== null) return `exited with status ${r.exitCode}`;
  return 'could not be started';
}

type Outcome = Pick<RunAsResult, 'exitCode' | 'signal' | 'timedOut' | 'interrupted' | 'stdout'>;

/**
 * Spawn and watch the child. The run ends when the child has exited and both pipes have closed;
 * whatever is left in its process group then is killed. Timeout and interrupt send SIGTERM to the
 * group, SIGKILL after KILL_GRACE_MS. So does the child's own exit while something it left behind
 * still holds the pipes. Pipes still open PIPE_GRACE_MS after SIGKILL and exit belong to a process
 * that escaped the group (setsid): they are closed on our side rather than waited for.
 */
function supervise(opts: RunAsOptions, file: string, args: string[], log: OutputLog): Promise<Outcome> {
  const out: Outcome = { exitCode: null, signal: null, timedOut: false, interrupted: false };
  const cannotRun = (e: unknown): Outcome => {
    log.note(`[cutover: cannot run ${opts.argv[0]} in ${opts.cwd} as ${opts.user.name}: ${errnoCode(e) ?? String(e)}]`);
    return out;
  };
  if (opts.signal?.aborted) return Promise.resolve({ ...out, interrupted: true });
  let child: ChildProcess;
  try {
    // libuv, given uid/gid, calls setgroups(0, NULL) before setgid and setuid (uv__process_child_init),
    // so the child keeps none of root's supplementary groups: its only group is the account's gid.
    // `detached` makes it setsid(): its own session and process group, and no controlling terminal.
    child = spawn(file, args, {
      cwd: opts.cwd,
      env: { ...opts.env, PATH: APP_PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', HOME: '/', USER: opts.user.name, LOGNAME: opts.user.name },
      uid: opts.user.uid,
      gid: opts.user.gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    // Exec failures other than ENOENT/EACCES (ENOTDIR, ELOOP, …) are thrown rather than emitted.
    return Promise.resolve(cannotRun(e));
  }
  const { pid, stdout, stderr } = child;
  // ENOENT and EACCES (also of cwd) come as an 'error' event, with no pid; Node closes the pipes itself.
  if (pid === undefined) return new Promise((resolve) => child.once('error', (e) => resolve(cannotRun(e))));
  if (!stdout || !stderr) throw new CutoverError('E_INTERNAL', 'spawn gave no output pipes');
  opts.onSpawn?.(pid);

  return new Promise((resolve) => {
    let exited = false;
    let openPipes = 2;
    let killed = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let cutTimer: NodeJS.Timeout | undefined;
    const captured: Buffer[] = [];
    let capturedBytes = 0;
    const live = opts.live ? liveCopy(opts.live) : undefined;

    // The group's id is the child's pid. Once the child is reaped the kernel keeps that id from
    // being reused while any member of the group is alive; with none left, kill() says ESRCH.
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-pid, sig);
      } catch (e) {
        if (errnoCode(e) !== 'ESRCH') throw e;
      }
    };
    const settle = (): void => {
      if (settled || !exited || openPipes > 0) return;
      settled = true;
      clearTimeout(timeout);
      clearTimeout(killTimer);
      clearTimeout(cutTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      killGroup('SIGKILL');
      if (opts.captureStdout) out.stdout = Buffer.concat(captured).toString('utf8');
      resolve(out);
    };
    const cutPipesLater = (): void => {
      if (!killed || !exited || cutTimer) return;
      cutTimer = setTimeout(() => {
        stdout.destroy();
        stderr.destroy();
      }, PIPE_GRACE_MS);
    };
    const stop = (): void => {
      if (killTimer) return;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => {
        killed = true;
        killGroup('SIGKILL');
        cutPipesLater();
      }, KILL_GRACE_MS);
    };
    const onAbort = (): void => {
      if (exited) return;
      out.interrupted = true;
      stop();
    };
    const timeout = setTimeout(
      () => {
        out.timedOut = true;
        stop();
      },
      Math.min(opts.timeoutMs, MAX_TIMER_MS),
    );
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const onData = (fromStdout: boolean) => (chunk: Buffer) => {
      log.add(chunk);
      live?.(chunk);
      if (fromStdout && opts.captureStdout && capturedBytes < STDOUT_CAP) {
        const part = chunk.subarray(0, STDOUT_CAP - capturedBytes);
        captured.push(part);
        capturedBytes += part.length;
      }
    };
    stdout.on('data', onData(true));
    stderr.on('data', onData(false));
    for (const pipe of [stdout, stderr]) {
      pipe.on('close', () => {
        openPipes--;
        settle();
      });
    }
    child.on('exit', (code, sig) => {
      exited = true;
      out.exitCode = code;
      out.signal = sig;
      clearTimeout(timeout);
      // What it left behind still holding the pipes is stopped the same way.
      if (openPipes > 0) stop();
      cutPipesLater();
      settle();
    });
  });
}

/**
 * Best effort copy to a live stream: while it asks to wait (a slow pipe), output is skipped rather
 * than buffered, and a line says how much once it drains. The child never waits for it.
 */
function liveCopy(live: NodeJS.WritableStream): (chunk: Buffer) => void {
  let skipped = 0;
  let waiting = false;
  return (chunk) => {
    if (!live.writable) return;
    if (waiting) {
      skipped += chunk.length;
      return;
    }
    if (live.write(chunk)) return;
    waiting = true;
    live.once('drain', () => {
      waiting = false;
      if (skipped > 0 && live.writable) live.write(`\n[cutover: ${skipped} bytes not shown here; see the log]\n`);
      skipped = 0;
    });
  };
}

/**
 * The log: the first HEAD_BYTES go straight to the file, the last TAIL_BYTES are held in a chunk
 * list until the end, and what falls between is counted, not kept. Writing it never stops the
 * run: a failure (ENOSPC) ends the writing and is reported in the tail instead.
 */
class OutputLog {
  total = 0;
  private readonly file: string;
  private readonly fd: number;
  private headBytes = 0;
  private readonly chunks: Buffer[] = [];
  private chunkBytes = 0;
  private readonly notes: string[] = [];
  private lastByte = 0x0a;
  /** Why writing the log stopped. */
  private failure: string | undefined;

  constructor(file: string) {
    this.file = file;
    try {
      this.fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o640);
    } catch (e) {
      throw fsError('create the log', file, e);
    }
    try {
      // An existing file keeps its owner and mode through O_TRUNC, and a new one gets the umask.
      fchownSync(this.fd, process.geteuid?.() ?? 0, process.getegid?.() ?? 0);
      fchmodSync(this.fd, 0o640);
    } catch (e) {
      closeSync(this.fd);
      throw fsError('secure the log', file, e);
    }
  }

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.headBytes < HEAD_BYTES) {
      const head = chunk.subarray(0, HEAD_BYTES - this.headBytes);
      this.write(head);
      this.headBytes += head.length;
    }
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    for (let first = this.chunks[0]; first && this.chunkBytes - first.length >= TAIL_BYTES; first = this.chunks[0]) {
      this.chunks.shift();
      this.chunkBytes -= first.length;
    }
  }

  /** A line of cutover's own, after the output: in the log and in the tail. */
  note(line: string): void {
    this.notes.push(line);
  }

  /** Write the end (after the omission line when a middle was dropped), fsync, close. Returns whether a middle was dropped. */
  close(): boolean {
    const rest = this.total - this.headBytes;
    const keep = Math.min(rest, TAIL_BYTES);
    if (rest > keep) this.writeLine(`[cutover: ${rest - keep} bytes omitted]`);
    this.write(this.last(keep));
    for (const line of this.notes) this.writeLine(line);
    try {
      if (this.failure === undefined) fsyncSync(this.fd);
    } catch (e) {
      this.failure = (e as Error).message;
    }
    closeSync(this.fd);
    if (this.failure !== undefined) this.notes.push(`[cutover: the log ${this.file} is incomplete: ${this.failure}]`);
    return rest > keep;
  }

  /** The last TAIL_LINES lines of the output's last TAIL_TEXT_BYTES, then cutover's notes. */
  tail(): string {
    const lines = this.last(Math.min(TAIL_TEXT_BYTES, this.chunkBytes)).toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return [...lines, ...this.notes].slice(-TAIL_LINES).join('\n');
  }

  private last(n: number): Buffer {
    const all = Buffer.concat(this.chunks, this.chunkBytes);
    return all.subarray(all.length - n);
  }

  private writeLine(line: string): void {
    this.write(Buffer.from(`${this.lastByte === 0x0a ? '' : '\n'}${line}\n`));
  }

  private write(buf: Buffer): void {
    if (this.failure !== undefined || buf.length === 0) return;
    try {
      for (let done = 0; done < buf.length;) done += writeSync(this.fd, buf, done);
      this.lastByte = buf[buf.length - 1] ?? this.lastByte;
    } catch (e) {
      this.failure = (e as Error).message;
    }
  }
}

/** When a process started (clock ticks since boot, field 22 of /proc/PID/stat): with the pid, who it is. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * End a process group a killed cutover left running (its migration), if its leader is still the
 * process that was started then: SIGKILL to the group, then wait (bounded) for the leader to go.
 */
export async function killLeftover(pid: number, start: string): Promise<boolean> {
  // The group outlives its leader: every process still in it (started no earlier than the leader) goes.
  const members = groupMembers(pid, start);
  if (!members.length) return false;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    return false;
  }
  for (let i = 0; i < 100 && groupMembers(pid, start).some((m) => !isZombie(m)); i++) await new Promise((r) => setTimeout(r, 50));
  return true;
}

/** Live processes in process group `pgid` that started at or after `start` (clock ticks since boot). */
function groupMembers(pgid: number, start: string): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // After ")": state(0) ppid(1) pgrp(2) … starttime(19)
      if (Number(f[2]) === pgid && f[0] !== 'Z' && BigInt(f[19] ?? '0') >= BigInt(start)) out.push(Number(n));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
