/**
 * The backup store: files in `[backup] dir` (root's, 0700; each backup 0600), recorded in the
 * state with the release and schema they were taken on and their sha256. A backup is checked
 * (checksum, then the driver reads it back) before anything is restored from it.
 */
import { mkdirSync, lstatSync, chmodSync } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { formatBytes } from '../report.ts';
import type { BackupRecord, State } from '../state/state.ts';
import { checkTrustedDir } from '../layout/trusted-path.ts';
import { fileDigest } from '../layout/file-digest.ts';
import { commandDriver } from './command.ts';
import type { DatabaseDriver, RehearsalSupport, RunUser } from './driver.ts';
import { postgresDriver } from './postgres.ts';
import { sqliteDriver } from './sqlite.ts';

export function runUser(config: Pick<Config, 'user'>): RunUser | undefined {
  const u = config.user;
  return u && u.uid !== undefined && u.gid !== undefined ? { name: u.name, uid: u.uid, gid: u.gid } : undefined;
}

/** The configured database's driver, or null without `[database]`. */
export function databaseDriver(config: Pick<Config, 'database' | 'user'>): (DatabaseDriver & Partial<RehearsalSupport>) | null {
  const db = config.database;
  if (!db) return null;
  const user = runUser(config);
  if (db.kind === 'sqlite') return sqliteDriver({ path: db.path, user });
  if (db.kind === 'postgres') return postgresDriver({ url: db.url, user });
  return commandDriver(db);
}

/** `[backup] dir`, made root's and 0700, on a trusted path (no other user can swap it for a link). */
export function openBackupDir(dir: string): string {
  checkTrustedDir(path.dirname(dir), { what: 'backup directory parent', allowMissing: true });
  try {
    mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (errnoCode(e) !== 'EEXIST') throw fsError('create the backup directory', dir, e);
  }
  checkTrustedDir(dir, { what: 'backup directory' });
  const st = lstatSync(dir);
  if ((st.mode & 0o7777) !== 0o700) chmodSync(dir, 0o700);
  return dir;
}

/** Space for a backup of about `estimate` bytes, keeping `reserve` free: else E_BACKUP_FAILED before anything is written. */
export async function checkBackupSpace(dir: string, estimate: number, reserve: number): Promise<void> {
  const st = await statfs(dir).catch(() => undefined);
  if (!st) return;
  const free = st.bavail * st.bsize;
  if (estimate + reserve > free) {
    throw new CutoverError('E_BACKUP_FAILED', `not enough space in ${dir} for a backup of about ${formatBytes(estimate)} (${formatBytes(free)} free)`, {
      hint: 'free space there, move [backup] dir to a larger filesystem, or remove old backups; nothing was changed',
    });
  }
}

/** Take a backup into `file` (under the backup dir), check it reads back, and return its record. */
export async function takeBackup(
  driver: DatabaseDriver,
  file: string,
  rec: Omit<BackupRecord, 'bytes' | 'sha256'>,
  signal: AbortSignal,
): Promise<BackupRecord> {
  await driver.backup(file, signal);
  try {
    await driver.check(file);
    const { sha256, bytes } = await fileDigest(file);
    return { ...rec, sha256, bytes };
  } catch (e) {
    await rm(file, { force: true });
    if (e instanceof CutoverError && e.code === 'E_BACKUP_CORRUPT') {
      throw new CutoverError('E_BACKUP_FAILED', `the backup just taken does not read back: ${e.message}`, {
        hint: 'check the database and its tools, then retry; nothing was changed',
        cause: e,
      });
    }
    throw e;
  }
}

/** The backup still has its recorded checksum and reads back; else E_BACKUP_CORRUPT. */
export async function checkBackup(driver: DatabaseDriver, dir: string, rec: BackupRecord): Promise<string> {
  const file = path.join(dir, rec.file);
  let got;
  try {
    got = await fileDigest(file);
  } catch (e) {
    throw new CutoverError('E_BACKUP_CORRUPT', `backup ${rec.id} (${file}) cannot be read: ${errnoCode(e) ?? (e as Error).message}`, {
      hint: 'it cannot be restored; use another backup from `backups`',
      cause: e,
    });
  }
  if (got.sha256 !== rec.sha256) {
    throw new CutoverError('E_BACKUP_CORRUPT', `backup ${rec.id} (${file}) has sha256 ${got.sha256}, not the ${rec.sha256} recorded when it was taken`, {
      hint: 'the file was changed or damaged; it is never restored; use another backup from `backups`',
    });
  }
  await driver.check(file);
  return file;
}

export function findBackup(state: State, id: string): BackupRecord {
  const rec = state.backups.find((b) => b.id === id);
  if (!rec) {
    throw new CutoverError('E_USAGE', `there is no backup ${JSON.stringify(id)}`, {
      hint: state.backups.length ? 'pick an id from `backups`' : 'no backups have been taken yet',
    });
  }
  return rec;
}
