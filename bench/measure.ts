/**
 * Run one command the way the benchmark times it: wall-clock from spawn to exit in this process,
 * peak RSS from GNU time (`%M`, the largest resident set of the process or any descendant it
 * waited for), and every stderr line stamped with its arrival time so phases can be told apart.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface Line {
  /** ms since the epoch (performance.timeOrigin-based, sub-ms resolution). */
  at: number;
  text: string;
}

export interface Measured {
  code: number | null;
  /** ms since the epoch at spawn. */
  startedAt: number;
  wallMs: number;
  peakRssKiB: number;
  stdout: string;
  stderr: string;
  lines: Line[];
}

const GNU_TIME = '/usr/bin/time';

const now = (): number => performance.timeOrigin + performance.now();

export function measure(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; rssFile: string }): Promise<Measured> {
  rmSync(opts.rssFile, { force: true });
  const startedAt = now();
  const child = spawn(GNU_TIME, ['-f', '%M', '-o', opts.rssFile, cmd, ...args], {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const lines: Line[] = [];
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    const at = now();
    const text = d.toString();
    stderr += text;
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const t of parts) lines.push({ at, text: t });
  });
  let exitedAt = startedAt;
  child.on('exit', () => (exitedAt = now()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      let peakRssKiB = NaN;
      try {
        // GNU time writes "Command exited with non-zero status N" before the figure on failure.
        const last = readFileSync(opts.rssFile, 'utf8').trim().split('\n').pop() ?? '';
        peakRssKiB = Number(last);
      } catch {
        peakRssKiB = NaN; // reported as missing
      }
      resolve({ code, startedAt, wallMs: exitedAt - startedAt, peakRssKiB, stdout, stderr, lines });
    });
  });
}

/** Run a command to completion and return how long it took (ms); throws on failure. */
export function timed(cmd: string, args: string[]): Promise<number> {
  const t0 = now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(now() - t0) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`))));
  });
}

/** Arrival time (ms since the epoch) of the first stderr line containing `needle`. */
export function lineAt(lines: Line[], needle: string): number | undefined {
  return lines.find((l) => l.text.includes(needle))?.at;
}
