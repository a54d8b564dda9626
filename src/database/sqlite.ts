/**
 * SQLite: the database is one file (plus its `-wal`/`-shm` while open). Backups use SQLite's
 * online backup API (node:sqlite), so they are consistent even while the app writes; restores
 * write the backup beside the live file, fsync it, give it the live file's owner and mode, and
 * rename it over the live file, then remove the old `-wal`/`-shm` (they belong to the old file).
 */
import { constants } from 'node:fs';
import { chown, lstat, mkdir, open, rm, stat } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { commandEnv } from '../system/commands.ts';
import path from 'node:path';
import { CutoverError, errnoCode } from '../errors.ts';
import type { DatabaseDriver, RehearsalSupport, RunUser, ScratchCopy } from './driver.ts';

type Sqlite = typeof import('node:sqlite');

/** Loaded on first use: only installs with a SQLite database pay for it. */
async function sqlite(): Promise<Sqlite> {
  return import('node:sqlite');
}

/**
 * Put `file` (root's, read by root and fed on stdin) in place of `live` as uid:gid: a temp file
 * beside it (mktemp), fsynced, given `mode` (and, only when that is root, `owner`), renamed over
 * it, the old -wal/-shm/-journal removed, the directory fsynced.
 */
async function restoreAs(uid: number, gid: number, file: string, live: string, mode: number, owner: string): Promise<void> {
  const script = [
    'set -eu',
    'umask 077',
    'tmp=$(mktemp "$1.cutover-restore-XXXXXX")',
    'trap \'rm -f "$tmp"\' EXIT',
    'cat > "$tmp"',
    'chmod "$2" "$tmp"',
    '[ "$(id -u)" != 0 ] || chown "$3" "$tmp"',
    'sync "$tmp"',
    'mv -f "$tmp" "$1"',
    'trap - EXIT',
    'rm -f "$1-wal" "$1-shm" "$1-journal"',
    'sync "$(dirname "$1")"',
  ].join('\n');
  const input = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', script, 'sh', live, mode.toString(8), owner], {
        stdio: [input.fd, 'ignore', 'pipe'],
        env: commandEnv(),
        cwd: '/',
        ...(uid !== 0 ? { uid, gid } : {}),
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
      child.on('error', (e) => resolve({ code: null, stderr: e.message }));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    if (r.code !== 0) throw new Error(r.stderr.trim().split('\n').pop() || `the restore exited ${r.code}`);
  } finally {
    await input.close();
  }
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
      const [liveSt, dirSt] = await Promise.all([lstat(live).catch(() => undefined), lstat(dir).catch(() => undefined)]);
      if (liveSt?.isSymbolicLink() || (liveSt && !liveSt.isFile())) {
        throw new CutoverError('E_UNSAFE_PATH', `the database ${live} is not a regular file`, {
          hint: 'point [database] path at the database file itself; nothing was restored',
        });
      }
      if (!dirSt?.isDirectory()) {
        throw new CutoverError('E_UNSAFE_PATH', `the database's directory ${dir} is not a directory`, {
          hint: 'point [database] path at the database file itself; nothing was restored',
        });
      }
      // The database's owner (the app's account) may rename, link or swap anything in its own
      // directory while this runs: the file work is done as that owner, never as root, so no
      // trick there can make root write, chown or remove something else.
      const owner = liveSt ?? dirSt;
      const mode = liveSt ? liveSt.mode & 0o7777 : 0o600;
      try {
        // As whoever owns the directory (who alone can create files in it); root, in a directory of root's, gives the file its owner.
        await restoreAs(dirSt.uid, dirSt.gid, file, live, mode, `${owner.uid}:${owner.gid}`);
      } catch (e) {
        throw backupFailed(
          `could not restore ${live} from ${file}`,
          e,
          `the live database was not replaced; restore it by hand: stop the units, then cp ${file} ${live}`,
        );
      }
    },

    async scratchCopy(sandbox): Promise<ScratchCopy> {
      // The migration rehearses as `user`: the copy lives in a directory of its own that it owns.
      // The directory stays root's 0700 until the file in it is the user's, so nothing can be swapped in between.
      const dir = path.join(sandbox, 'rehearsal');
      await mkdir(dir, { mode: 0o700 });
      const copy = path.join(dir, path.basename(live));
      try {
        await copyDatabase(live, copy);
        if (opts.user) {
          await chown(copy, opts.user.uid, opts.user.gid);
          await chown(dir, opts.user.uid, opts.user.gid);
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
