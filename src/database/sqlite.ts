/**
 * SQLite: the database is one file (plus its `-wal`/`-shm` while open). Backups use SQLite's
 * online backup API (node:sqlite), so they are consistent even while the app writes; restores
 * write the backup beside the live file, fsync it, give it the live file's owner and mode, and
 * rename it over the live file, then remove the old `-wal`/`-shm` (they belong to the old file).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, chown, copyFile, lstat, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CutoverError, errnoCode } from '../errors.ts';
import { fsyncDir } from '../layout/durable.ts';
import type { DatabaseDriver, RehearsalSupport, RunUser, ScratchCopy } from './driver.ts';

type Sqlite = typeof import('node:sqlite');

/** Loaded on first use: only installs with a SQLite database pay for it. */
async function sqlite(): Promise<Sqlite> {
  return import('node:sqlite');
}

function reason(e: unknown): string {
  const code = errnoCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

function backupFailed(what: string, e: unknown, hint: string): CutoverError {
  return new CutoverError('E_BACKUP_FAILED', `${what}: ${reason(e)}`, { hint, cause: e });
}

/** Create `file` empty, 0600, refusing anything already there (no link is ever followed). */
async function createPrivate(file: string): Promise<void> {
  const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  await fh.close();
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A consistent copy of the live database at `dest` (created 0600, must not exist), in rollback-journal mode. */
async function copyDatabase(live: string, dest: string): Promise<void> {
  const { DatabaseSync, backup } = await sqlite();
  await createPrivate(dest);
  const src = new DatabaseSync(live, { readOnly: true });
  try {
    await backup(src, dest);
  } finally {
    src.close();
  }
  // The copy stands alone: no -wal beside it in the backup directory.
  const copy = new DatabaseSync(dest);
  try {
    copy.exec('PRAGMA journal_mode=DELETE');
  } finally {
    copy.close();
  }
  await fsyncFile(dest);
}

export function sqliteDriver(opts: { path: string; user: RunUser | undefined }): DatabaseDriver & RehearsalSupport {
  const live = opts.path;
  return {
    kind: 'sqlite',
    describe: live,
    env: { CUTOVER_DATABASE: live },
    extension: '.db',
    manualRestore: (file) => `stop the units, then: cp ${file} ${live} && rm -f ${live}-wal ${live}-shm, and give it back its owner (chown)`,

    async exists() {
      try {
        return (await lstat(live)).isFile();
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') return false;
        throw backupFailed(`cannot inspect the database ${live}`, e, 'check [database] path and its permissions');
      }
    },

    async estimateBytes() {
      let bytes = 0;
      for (const f of [live, `${live}-wal`])
        bytes += await stat(f).then(
          (s) => s.size,
          () => 0,
        );
      return bytes;
    },

    async backup(file) {
      try {
        await copyDatabase(live, file);
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') await rm(file, { force: true });
        const full = errnoCode(e) === 'ENOSPC' || /disk is full|SQLITE_FULL/i.test(reason(e));
        throw backupFailed(
          `could not back up the database ${live} to ${file}`,
          e,
          full ? 'free space where backups go ([backup] dir), then retry' : 'check that the database file is a readable SQLite database',
        );
      }
    },

    async check(file) {
      const { DatabaseSync } = await sqlite();
      let verdict: string;
      try {
        const db = new DatabaseSync(file, { readOnly: true });
        try {
          const rows = db.prepare('PRAGMA integrity_check').all() as Array<Record<string, unknown>>;
          verdict = rows.map((r) => String(Object.values(r)[0])).join('; ');
        } finally {
          db.close();
        }
      } catch (e) {
        verdict = reason(e);
      }
      if (verdict !== 'ok') {
        throw new CutoverError('E_BACKUP_CORRUPT', `backup ${file} does not read back as a SQLite database: ${verdict}`, {
          hint: 'it cannot be restored; use another backup from `backups`',
        });
      }
    },

    async restore(file) {
      const dir = path.dirname(live);
      const owner = await stat(live).then(
        (s) => ({ uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 }),
        () => undefined,
      );
      // Gone (deleted by hand): the database is recreated as the directory's owner, private.
      const dirSt = await stat(dir);
      const { uid, gid, mode } = owner ?? { uid: dirSt.uid, gid: dirSt.gid, mode: 0o600 };
      const tmp = path.join(dir, `.${path.basename(live)}.cutover-restore-${randomBytes(6).toString('hex')}`);
      try {
        await copyFile(file, tmp, constants.COPYFILE_EXCL);
        await chown(tmp, uid, gid);
        await chmod(tmp, mode);
        await fsyncFile(tmp);
        await rename(tmp, live);
        for (const side of ['-wal', '-shm', '-journal']) await rm(`${live}${side}`, { force: true });
        await fsyncDir(dir);
      } catch (e) {
        await rm(tmp, { force: true });
        throw backupFailed(`could not restore ${live} from ${file}`, e, `the live database was not replaced; restore it by hand: cp ${file} ${live}`);
      }
    },

    async scratchCopy(sandbox): Promise<ScratchCopy> {
      // The migration rehearses as `user`: the copy lives in a directory of its own that it owns.
      const dir = path.join(sandbox, 'rehearsal');
      await mkdir(dir, { mode: 0o700 });
      const copy = path.join(dir, path.basename(live));
      try {
        await copyDatabase(live, copy);
        if (opts.user) {
          await chown(dir, opts.user.uid, opts.user.gid);
          await chown(copy, opts.user.uid, opts.user.gid);
        }
      } catch (e) {
        await rm(dir, { recursive: true, force: true });
        throw backupFailed(`could not copy the database ${live} for the rehearsal`, e, 'free space in TMPDIR, or check the database file');
      }
      return {
        env: { CUTOVER_DATABASE: copy },
        drop: () => rm(dir, { recursive: true, force: true }).catch(() => undefined),
      };
    },
  };
}
