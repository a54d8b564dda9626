/**
 * The steps an operation is made of: plain data, worked out by the planner (plan.ts), carried
 * out by the executor (executor.ts) through the handlers (handlers.ts), recorded in the journal.
 * Adding a capability means adding a kind here, a handler there, and the planner placing it.
 */

export type Step =
  /** Read: is the current release healthy before anything changes? */
  | { kind: 'preflight'; version: string; force: boolean }
  /** Read: download the Sigstore bundle (small, bounded). */
  | { kind: 'fetch-bundle'; version: string; url: string }
  /** Read: the bundle signs the index's digest for this exact identity and issuer. */
  | { kind: 'verify'; version: string; sha256: string; identity: string; issuer: string }
  /** Write (private staging only): stream the artifact through the hash into the extractor. */
  | { kind: 'stage'; version: string; url: string; size: number; sha256: string; unpackedSize: number | null; budget: number | null }
  /** Read: an installed release is still whole and what it claims to be. */
  | { kind: 'check-retained'; version: string; force?: boolean }
  /** Write: remove old releases first, so the new one fits. Not undone (they were going anyway). */
  | { kind: 'prune-before'; versions: string[]; need: number; available: number; reserve: number }
  /** Write: flush staging to disk and rename it into releases/vX. Undo: remove it. */
  | { kind: 'install'; version: string }
  /** Write: rename(2) a new `current` link. Undo: switch back, restart the units that ran the new code, gate. */
  | { kind: 'switch'; from: string | null; to: string; previous: string | null }
  /** Wait: restart one unit and wait until it is up. Undone by the switch's undo. */
  | { kind: 'restart'; unit: string }
  /** Wait: the health gate on the new release. Nothing to undo. */
  | { kind: 'gate'; version: string }
  /** Write: remove releases beyond `keep`. Failures are warnings; never undone. */
  | { kind: 'prune'; versions: string[] }
  /** Wait: stop the units (in this order: the reverse of theirs) before the database changes. Undo: start them in order, gate. */
  | {
      kind: 'stop';
      units: string[];
      /**
       * The schema changes and nothing can put the data back (no backup, not compatible): if the
       * update fails after the database changed, the units stay stopped (exit 9) rather than run
       * the old release on it.
       */
      unguarded?: boolean;
    }
  /**
   * Write: a checksummed, checked backup of the database into `[backup] dir`, recorded in the state.
   * Undo: restore it when a later step changed the database (a migration, the new release's start,
   * a restore), unless `compatible` (the old release runs on the new schema) and no migration failed.
   */
  | {
      kind: 'backup';
      id: string;
      file: string;
      version: string | null;
      schema: number | null;
      rollbackSafe: number | null;
      reason: 'update' | 'manual' | 'restore' | 'first-install';
      compatible: boolean;
      /** When the undo keeps the changed database (compatible), the schema it is then on. */
      keeps?: { version: string; schema: number; rollbackSafe: number };
    }
  /** Write: the release's migration, as `user`, from its directory. Undone by the backup's restore. */
  | { kind: 'migrate'; version: string; argv: string[]; from: string | null; schemaFrom: number | null; schemaTo: number; backup: string | null }
  /** Wait: start one unit (after a stop) and wait until it is up. Undo: stop it again. */
  | { kind: 'start'; unit: string }
  /** Read: a recorded backup still has its checksum and reads back as a backup. */
  | { kind: 'check-backup'; id: string }
  /** Write: put the database back from a backup (the backup step before it keeps what it replaces). */
  | { kind: 'restore'; id: string }
  /** Write: the database's schema as it now is. */
  | { kind: 'record-schema'; version: string; schema: number | null; rollbackSafe: number | null; via: 'migrate' | 'start' | 'restore' | 'install' }
  /** Write: remove backups beyond `[backup] keep` (never one that protects a retained release). Failures are warnings. */
  | { kind: 'prune-backups'; ids: string[] }
  /** Read (dry run): the target's `migrate_pending` against the live database, as `user`. */
  | { kind: 'pending'; version: string; argv: string[]; schemaFrom: number | null; schemaTo: number }
  /** Read (dry run, --rehearse): the migration against a scratch copy of the database, as `user`. */
  | { kind: 'rehearse'; version: string; argv: string[]; from: string | null; schemaFrom: number | null; schemaTo: number };

export type StepKind = Step['kind'];

/** planned: listed by a dry run, not run. */
type StepStatus = 'pending' | 'planned' | 'running' | 'done' | 'failed' | 'undone';

/** One step as the journal and `--json` show it. */
export interface StepRecord {
  step: Step;
  status: StepStatus;
  ms?: number;
  error?: string;
}

/** The steps that only read, or write into a private sandbox: the ones `update --dry-run` runs. */
export const READ_ONLY: ReadonlySet<StepKind> = new Set(['fetch-bundle', 'verify', 'stage', 'check-retained', 'check-backup', 'pending', 'rehearse']);

/** A step as `--json` prints it: its kind and parameters, flat, then outcome and duration. */
export function describeStep(r: StepRecord): Record<string, unknown> {
  return { ...r.step, outcome: r.status, ...(r.ms !== undefined ? { ms: r.ms } : {}), ...(r.error ? { error: r.error } : {}) };
}

/** One line per step for people: `switch v1.0.0 -> v2.0.0`. */
export function stepLine(s: Step): string {
  const v = (x: string | null): string => (x === null ? '(none)' : `v${x}`);
  switch (s.kind) {
    case 'preflight':
      return `preflight      check that ${v(s.version)} is healthy`;
    case 'fetch-bundle':
      return `fetch-bundle   Sigstore bundle of ${v(s.version)}`;
    case 'verify':
      return `verify         signature by ${s.identity}`;
    case 'stage':
      return `stage          download ${v(s.version)} and extract it into private staging`;
    case 'check-retained':
      return `check-retained ${v(s.version)} is whole`;
    case 'prune-before':
      return `prune-before   remove ${s.versions.map(v).join(', ')} to make room`;
    case 'install':
      return `install        releases/${v(s.version)}`;
    case 'switch':
      return `switch         current ${v(s.from)} -> ${v(s.to)}`;
    case 'restart':
      return `restart        ${s.unit}`;
    case 'gate':
      return `gate           health of ${v(s.version)}`;
    case 'prune':
      return `prune          remove ${s.versions.map(v).join(', ')}`;
    case 'stop':
      return `stop           ${s.units.join(', ')}`;
    case 'backup':
      return `backup         the database (schema ${s.schema ?? 'unknown'}, on ${v(s.version)}) to ${s.file}`;
    case 'migrate':
      return `migrate        schema ${s.schemaFrom ?? '(none)'} -> ${s.schemaTo}: ${s.argv.join(' ')}`;
    case 'start':
      return `start          ${s.unit}`;
    case 'check-backup':
      return `check-backup   ${s.id} is intact`;
    case 'restore':
      return `restore        the database from backup ${s.id}`;
    case 'record-schema':
      return s.schema === null
        ? `record-schema  the database has no recorded schema (as in its backup)`
        : `record-schema  the database is on schema ${s.schema} (${v(s.version)})`;
    case 'prune-backups':
      return `prune-backups  remove ${s.ids.join(', ')}`;
    case 'pending':
      return `pending        list the migrations ${v(s.version)} would apply`;
    case 'rehearse':
      return `rehearse       migrate a copy of the database to schema ${s.schemaTo}`;
  }
}
