import { spawn, type ChildProcess } from 'node:child_process';
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
