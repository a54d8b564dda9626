import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { CutoverError, errnoCode, fsError } from '../errors.ts';

export interface Lock {
  release(): void;
}

const CONFLICT = 75;

/**
 * One operation at a time per install root: flock(2) on `.cutover/lock`, taken through
 * util-linux `flock -n <fd>` on a descriptor this process keeps open. The kernel drops the lock
 * when the process exits, however it exits, so a killed holder never leaves a stale lock.
 */
export function acquireLock(lockFile: string, what: string): Lock {
  let fd: number;
  try {
    fd = openSync(lockFile, 'a+', 0o644);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') {
      throw new CutoverError('E_NOT_INSTALLED', `nothing is installed here (${lockFile} does not exist)`, {
        hint: 'check `root` in the config, or install a release with `update` first',
        cause: e,
      });
    }
    throw fsError('open the lock', lockFile, e);
  }
  const r = spawnSync('flock', ['--nonblock', '--conflict-exit-code', String(CONFLICT), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
  });
  if (r.status === CONFLICT) {
    closeSync(fd);
    const holder = readHolder(lockFile);
    throw new CutoverError('E_LOCKED', `another cutover operation holds ${lockFile}${holder ? ` (${holder})` : ''}`, {
      hint: 'wait for it to finish, then run this again',
    });
  }
  if (r.error || r.status !== 0) {
    closeSync(fd);
    throw fsError('lock', lockFile, r.error ?? new Error(r.stderr.toString().trim() || `flock exited ${r.status}`));
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${JSON.stringify({ pid: process.pid, op: what, since: new Date().toISOString() })}\n`);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        ftruncateSync(fd, 0);
      } finally {
        closeSync(fd);
      }
    },
  };
}

function readHolder(lockFile: string): string | undefined {
  try {
    const h = JSON.parse(readFileSync(lockFile, 'utf8')) as { pid?: number; op?: string; since?: string };
    return `pid ${h.pid ?? '?'}, ${h.op ?? 'operation'} since ${h.since ?? '?'}`;
  } catch {
    return undefined;
  }
}
