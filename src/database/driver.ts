/**
 * A database cutover backs up, restores and points migrations at: SQLite (a file), PostgreSQL
 * (pg_dump/pg_restore of the system), or the operator's own commands. Each driver is a narrow
 * edge around one side effect; the backup store (backups.ts) names, checksums and records files.
 */

/** The account the app runs as (config `user`), resolved to ids. */
export interface RunUser {
  name: string;
  uid: number;
  gid: number;
}

export interface DatabaseDriver {
  kind: 'sqlite' | 'postgres' | 'command';
  /** For messages: the file, or the URL without its password. */
  describe: string;
  /** How a migration finds the database: `CUTOVER_DATABASE` (SQLite file) or `DATABASE_URL` (postgres). */
  env: Record<string, string>;
  /** File extension of its backups (`.db`, `.dump`, `.backup`). */
  extension: string;
  /** Is there a database yet? (A first install with no database file has nothing to back up.) */
  exists(): Promise<boolean>;
  /** About how many bytes a backup takes: for the disk check and the dry run. */
  estimateBytes(): Promise<number>;
  /**
   * Write a consistent backup to `file`, which must not exist; created 0600 (root's), in a
   * directory the caller made 0700. Any failure is E_BACKUP_FAILED (ENOSPC included) and
   * leaves no file behind.
   */
  backup(file: string, signal: AbortSignal): Promise<void>;
  /** The backup reads back as one (SQLite integrity_check, pg_restore --list); else E_BACKUP_CORRUPT. */
  check(file: string): Promise<void>;
  /**
   * Put the database back from `file`, with the live database's owner and mode, so that `user`
   * can read and write it afterwards. The units are stopped while this runs. Failure: E_BACKUP_FAILED
   * with what the database now holds, as far as known.
   */
  restore(file: string): Promise<void>;
  /** The command an operator runs to put `file` back by hand, for the message of a failed restore. */
  manualRestore(file: string): string;
}

/** A throwaway copy of the database for `update --dry-run --rehearse`. */
export interface ScratchCopy {
  /** Points a migration at the copy: same keys as `DatabaseDriver.env`. */
  env: Record<string, string>;
  /** Remove the copy (drop the scratch database, delete the file). Never throws. */
  drop(): Promise<void>;
}

export interface RehearsalSupport {
  /** Copy the live database (only read) into a scratch one `user` can migrate; `dir` is a private sandbox for files. */
  scratchCopy(dir: string, signal: AbortSignal): Promise<ScratchCopy>;
}
