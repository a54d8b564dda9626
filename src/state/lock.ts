import { spawnSync } from 'node:child_process';
import { commandEnv } from '../system/commands.ts';
import { randomBytes } from 'node:crypto';
import fs, { closeSync, fstatSync, ftruncateSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { CutoverError, errnoCode, fsError } from '../errors.ts';

export interface Lock {
  release(): void;
}

const CONFLICT = 75;
const O_RDONLY_NOFOLLOW = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/**
 * One operation at a time per install root: flock(2) on `.cutover/lock`, taken through
 * util-linux `flock -n <fd>` on a descriptor this process keeps open. The kernel drops the lock
 * when the process exits, however it exits, so a killed holder never leaves a stale lock.
 */
export function acquireLock(lockFile: string, what: string): Lock {
  let fd: number | undefined;
  for (let attempt = 0; fd === undefined; attempt++) {
    const candidate = openLockFile(lockFile);
    const r = spawnSync('flock', ['--nonblock', '--conflict-exit-code', String(CONFLICT), '3'], {
      env: commandEnv(),
      stdio: ['ignore', 'ignore', 'pipe', candidate],
    });
    if (r.status === CONFLICT) {
      closeSync(candidate);
      const holder = readHolder(lockFile);
      throw new CutoverError('E_LOCKED', `another cutover operation holds ${lockFile}${holder ? ` (${holder})` : ''}`, {
        hint: 'wait for it to finish, then run this again',
      });
    }
    if (r.error || r.status !== 0) {
      closeSync(candidate);
      throw fsError('lock', lockFile, r.error ?? new Error(r.stderr.toString().trim() || `flock exited ${r.status}`));
    }
    // Another run may have replaced the file between our open and our flock: a lock on an
    // inode that is no longer at the path guards nothing. Hold it only if it is still there.
    if (sameFile(candidate, lockFile)) fd = candidate;
    else {
      closeSync(candidate);
      if (attempt >= 10) throw fsError('lock', lockFile, new Error('the lock file keeps being replaced'));
    }
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

const { O_RDWR, O_CREAT, O_NOFOLLOW, O_EXCL, O_WRONLY } = fs.constants;

/**
 * Open the lock without following a link, and make sure it is ours alone: a regular file owned
 * by us, mode 0600. flock(2) works on a read-only descriptor, so a lock anyone can open is a
 * lock anyone can hold. Anything else at the path (a looser file left by an older release, a
 * planted link) is replaced by a fresh file with one rename(2); a lock someone holds on the
 * old inode then guards nothing.
 */
function openLockFile(lockFile: string): number {
  let fd: number;
  try {
    fd = openSync(lockFile, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') {
      throw new CutoverError('E_NOT_INSTALLED', `nothing is installed here (${path.dirname(lockFile)} does not exist)`, {
        hint: 'check `root` in the config, or install a release with `update` first',
        cause: e,
      });
    }
    if (code !== 'ELOOP') throw fsError('open the lock', lockFile, e);
    replaceLockFile(lockFile);
    return openLockFile(lockFile);
  }
  const st = fstatSync(fd);
  const euid = process.geteuid?.() ?? 0;
  if (!st.isFile() || st.uid !== euid || (st.mode & 0o7777) !== 0o600) {
    closeSync(fd);
    replaceLockFile(lockFile);
    return openLockFile(lockFile);
  }
  return fd;
}

function replaceLockFile(lockFile: string): void {
  const tmp = `${lockFile}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  try {
    closeSync(openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
    renameSync(tmp, lockFile);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing was created.
    }
    throw fsError('replace the lock', lockFile, e);
  }
}

function sameFile(fd: number, file: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = lstatSync(file);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

function readHolder(lockFile: string): string | undefined {
  try {
    const fd = openSync(lockFile, O_RDONLY_NOFOLLOW);
    let text: string;
    try {
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
    const h = JSON.parse(text) as { pid?: number; op?: string; since?: string };
    return `pid ${h.pid ?? '?'}, ${h.op ?? 'operation'} since ${h.since ?? '?'}`;
  } catch {
    return undefined;
  }
}

/**
 * Who holds the lock, without taking it (doctor only reads): a shared flock that fails means an
 * operation holds it. null: nobody does (or there is no lock file yet).
 */
export function lockHolder(lockFile: string): string | null {
  let fd: number;
  try {
    fd = openSync(lockFile, O_RDONLY_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const r = spawnSync('flock', ['--nonblock', '--shared', '--conflict-exit-code', String(CONFLICT), '3'], {
      env: commandEnv(),
      stdio: ['ignore', 'ignore', 'ignore', fd],
    });
    return r.status === CONFLICT ? (readHolder(lockFile) ?? 'an operation') : null;
  } finally {
    closeSync(fd);
  }
}
