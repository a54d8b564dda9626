/**
 * `kind = "command"`: the operator's own backup and restore programs (absolute paths from the
 * root-owned config), run as root with `{file}` replaced by the backup's path, a fixed PATH and a
 * minimal environment, no shell. cutover still names, checksums, records and prunes the files.
 */
import { spawn } from 'node:child_process';
import { chmod, lstat, rm } from 'node:fs/promises';
import { CutoverError } from '../errors.ts';
import { commandEnv } from '../system/commands.ts';
import type { DatabaseDriver } from './driver.ts';

const TIMEOUT_MS = 6 * 3600_000;

function run(argv: string[], file: string, signal?: AbortSignal): Promise<{ code: number | null; stderr: string }> {
  const [cmd, ...args] = argv.map((a) => a.replaceAll('{file}', file));
  return new Promise((resolve) => {
    const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'], env: commandEnv(), timeout: TIMEOUT_MS, ...(signal ? { signal } : {}) });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString();
    });
    child.on('error', (e) => resolve({ code: null, stderr: e.message }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function lastLine(s: string): string {
  return s.trim().split('\n').pop() ?? '';
}

export function commandDriver(opts: { backup: string[]; restore: string[] }): DatabaseDriver {
  return {
    kind: 'command',
    describe: `the database behind ${opts.backup[0]}`,
    env: {},
    extension: '.backup',
    manualRestore: (file) => opts.restore.map((a) => a.replaceAll('{file}', file)).join(' '),
    exists: () => Promise.resolve(true),
    estimateBytes: () => Promise.resolve(0),

    async backup(file, signal) {
      const r = await run(opts.backup, file, signal);
      const st = await lstat(file).catch(() => undefined);
      if (r.code !== 0 || !st?.isFile()) {
        await rm(file, { force: true });
        const why = r.code === 0 ? 'it wrote no file at {file}' : `it exited ${r.code ?? 'on a signal'}: ${lastLine(r.stderr) || 'no message'}`;
        throw new CutoverError('E_BACKUP_FAILED', `the backup command ${opts.backup[0]} failed: ${why}`, {
          hint: 'run it by hand to see why (free space? credentials?), then retry',
        });
      }
      await chmod(file, 0o600);
    },

    async check(file) {
      const st = await lstat(file).catch(() => undefined);
      if (!st?.isFile() || st.size === 0) {
        throw new CutoverError('E_BACKUP_CORRUPT', `backup ${file} is missing or empty`, { hint: 'use another backup from `backups`' });
      }
    },

    async restore(file) {
      const r = await run(opts.restore, file);
      if (r.code !== 0) {
        throw new CutoverError(
          'E_BACKUP_FAILED',
          `the restore command ${opts.restore[0]} failed (exit ${r.code ?? 'on a signal'}): ${lastLine(r.stderr) || 'no message'}`,
          {
            hint: `what the database holds now depends on that command; restore by hand: ${opts.restore.map((a) => a.replaceAll('{file}', file)).join(' ')}`,
          },
        );
      }
    },
  };
}
