/**
 * A small filesystem for disk-space tests: a size- and inode-limited tmpfs mounted at `dir`
 * inside a private mount namespace that lives as long as this object. The host never sees the
 * mount (its `dir` stays an empty directory); commands run inside with `exec()` see it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { RunResult } from './cli.ts';

export interface SmallFs {
  readonly dir: string;
  exec(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  stop(): void;
}

let availability: { ok: boolean; why?: string } | undefined;

export function smallFsAvailable(): { ok: boolean; why?: string } {
  if (availability) return availability;
  if (process.getuid?.() !== 0) availability = { ok: false, why: 'needs root to mount a tmpfs in a private mount namespace' };
  else {
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /mnt'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    availability = r.status === 0 ? { ok: true } : { ok: false, why: `cannot mount in a private namespace: ${(r.stderr || r.error?.message || '').trim()}` };
  }
  return availability;
}

export async function startSmallFs(dir: string, opts: { bytes: number; inodes?: number }): Promise<SmallFs> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const o = [`size=${opts.bytes}`, 'mode=0755', ...(opts.inodes ? [`nr_inodes=${opts.inodes}`] : [])].join(',');
  // The shell becomes `sleep` (exec): its PID is the namespace's anchor, killed by stop().
  const holder: ChildProcess = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o ${o} tmpfs "$1" && echo ready && exec sleep 86400`, 'sh', dir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    holder.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    holder.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    holder.on('close', (code) => reject(new Error(`small fs: unshare exited ${code}: ${err}`)));
  });
  const pid = holder.pid as number;
  return {
    dir,
    exec(cmd, args, env = {}) {
      return new Promise((resolve) => {
        const child = spawn('nsenter', ['-t', String(pid), '-m', '--', cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
      });
    },
    stop() {
      holder.kill('SIGKILL');
    },
  };
}
