import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO, 'src', 'cli', 'run.ts');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawn the real CLI (Node 22, TypeScript sources) and collect what it prints. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, ...args], {
    env: { ...process.env, CUTOVER_PROG: 'demo', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<RunResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return spawnCli(args, env).done;
}

/** Run any command with exactly `env` (nothing inherited), optionally feeding `stdin`, and collect what it prints. */
export function runCommand(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; stdin?: string }): Promise<RunResult> {
  const child = spawn(cmd, args, { env: opts.env, stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** `npm run build:exe` for one architecture into `out`; the executable's path. */
export function buildExecutable(arch: 'x64' | 'arm64', out: string): string {
  const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', path.join(REPO, 'scripts', 'build-exe.ts'), '--arch', arch, '--out', out], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return path.join(out, `cutover-linux-${arch}`);
}

/**
 * Everything on disk under `dir` as sorted lines (type, mode, link target, content hash), so a
 * test can assert that a failure changed nothing.
 */
export function snapshotTree(dir: string, opts: { skip?: string[] } = {}): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (opts.skip?.includes(r)) continue;
      const p = path.join(d, n);
      const st = lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`L ${r} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`D ${r} ${mode}`);
        walk(p, r);
      } else {
        out.push(`F ${r} ${mode} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`);
      }
    }
  };
  walk(dir, '');
  return out;
}

/** Entries of a directory; an absent directory counts as empty. */
export function entriesOf(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
