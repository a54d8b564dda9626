import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { writeFileAtomic } from '../layout/durable.ts';
import type { Layout } from '../layout/paths.ts';
import type { StepRecord } from '../engine/steps.ts';

/**
 * An operation in progress: its steps, each with its status. Written before and after every
 * step; present only while an operation runs, or after it was killed.
 */
export interface Journal {
  op: 'update' | 'rollback' | 'gc' | 'restore' | 'backup';
  from: string | null;
  to: string | null;
  startedAt: string;
  pid: number;
  /**
   * What recovery does with it if it was killed: `undo` the done steps in reverse, unless every
   * step up to `commitAt` is done (then the operation has succeeded and the rest is completed);
   * `resume` carries on from the first step not done (rollback, gc).
   */
  recovery: 'undo' | 'resume';
  /** Index of the step after which an `undo` operation counts as committed. */
  commitAt: number;
  steps: StepRecord[];
}

/** The switch an older cutover (state format 1) recorded as in progress. */
export interface LegacyPending {
  op: 'update' | 'rollback';
  from: string | null;
  to: string;
  startedAt: string;
  pid: number;
  phase?: 'switching' | 'activating';
}

interface InstalledRecord {
  sha256: string;
  installedAt: string;
  identity?: string;
}

/**
 * The database's schema as cutover last recorded it: the schema of the release that last brought
 * it there (by migrating, or by starting it), or of the backup it last restored.
 */
export interface DatabaseRecord {
  schema: number;
  /** `rollback_safe_schema` of the release that brought the database to `schema`. */
  rollbackSafe: number;
  /** The release that brought it there (or on which the restored backup was taken). */
  version: string;
  at: string;
  via: 'migrate' | 'start' | 'restore' | 'install';
}

/** A backup cutover took: the file lives in `[backup] dir`. */
export interface BackupRecord {
  id: string;
  /** The release current when it was taken, and the database's schema then. */
  version: string | null;
  schema: number | null;
  rollbackSafe: number | null;
  /** update: before a schema change (or every update, `when = "always"`); manual: `app backup`; restore: before a restore replaced the data. */
  reason: 'update' | 'manual' | 'restore' | 'first-install';
  created: string;
  /** The file's name inside the backup directory. */
  file: string;
  bytes: number;
  sha256: string;
}

const STATE_FORMAT = 2;

export interface State {
  /** 2 since the step engine; format 1 (`"schema": 1`, with `pending`) is read and upgraded. */
  format: typeof STATE_FORMAT;
  /** The release `current` pointed at before the last switch: `rollback` goes there. */
  previous: string | null;
  /** Releases that failed after being switched to; never installed again automatically. */
  bad: string[];
  journal: Journal | null;
  installed: Record<string, InstalledRecord>;
  /** null until a release that declares `schema` is installed. */
  database: DatabaseRecord | null;
  /** Oldest first. */
  backups: BackupRecord[];
  /** Read from a format-1 file, turned into a journal by recovery (which knows the units). */
  legacyPending?: LegacyPending;
}

function emptyState(): State {
  return { format: STATE_FORMAT, previous: null, bad: [], journal: null, installed: {}, database: null, backups: [] };
}

const { O_RDONLY, O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = constants;

/** Files under .cutover/ are never read or written through a link. */
async function readNoFollow(file: string): Promise<string> {
  const fh = await open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

export async function readState(layout: Layout): Promise<State> {
  let text: string;
  try {
    text = await readNoFollow(layout.stateFile);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return emptyState();
    throw fsError('read', layout.stateFile, e);
  }
  try {
    return upgradeState(JSON.parse(text) as Record<string, unknown>);
  } catch (e) {
    throw new CutoverError('E_LAYOUT', `state file ${layout.stateFile} is corrupt: ${(e as Error).message}`, {
      hint: 'move it aside; cutover rebuilds what it can from releases/ and current',
      cause: e,
    });
  }
}

/**
 * Format 1 (cutover 0.1 before the step engine): `{"schema": 1, previous, bad, pending, installed}`.
 * Everything carries over; a pending switch becomes `legacyPending` for recovery to settle.
 */
function upgradeState(s: Record<string, unknown>): State {
  const base = emptyState();
  const previous = typeof s.previous === 'string' ? s.previous : null;
  const bad = Array.isArray(s.bad) ? s.bad.filter((v): v is string => typeof v === 'string') : [];
  const installed = s.installed && typeof s.installed === 'object' ? (s.installed as Record<string, InstalledRecord>) : {};
  if (s.format === STATE_FORMAT) {
    return {
      ...base,
      previous,
      bad,
      installed,
      journal: (s.journal as Journal | null | undefined) ?? null,
      database: (s.database as DatabaseRecord | null | undefined) ?? null,
      backups: Array.isArray(s.backups) ? (s.backups as BackupRecord[]) : [],
    };
  }
  if (s.schema === 1 && s.format === undefined) {
    const pending = s.pending as LegacyPending | null | undefined;
    return { ...base, previous, bad, installed, ...(pending ? { legacyPending: pending } : {}) };
  }
  throw new Error(
    `unknown state format ${JSON.stringify(s.format ?? s.schema ?? null)} (this cutover reads formats 1 and ${STATE_FORMAT}; was it written by a newer cutover?)`,
  );
}

export async function writeState(layout: Layout, state: State): Promise<void> {
  const { legacyPending: _legacy, ...rest } = state;
  await writeFileAtomic(layout.stateFile, `${JSON.stringify(rest, null, 2)}\n`, 0o644);
}

export interface HistoryRecord {
  at: string;
  op: 'update' | 'rollback' | 'gc' | 'restore' | 'backup' | 'recover';
  from: string | null;
  to: string | null;
  result: 'ok' | 'noop' | 'failed' | 'completed' | 'undone';
  code?: string;
  message?: string;
  durationMs?: number;
  pruned?: string[];
  /** The steps run, with their outcome and duration (the journal's timings). */
  steps?: Array<{ kind: string; outcome: string; ms?: number }>;
}

/** One JSON line per operation, fsynced: the audit trail `status` shows. */
export async function appendHistory(layout: Layout, rec: HistoryRecord): Promise<void> {
  try {
    const fh = await open(layout.historyFile, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o644);
    try {
      await fh.appendFile(`${JSON.stringify(rec)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw fsError('append to', layout.historyFile, e);
  }
}

export async function readHistory(layout: Layout, limit = 20): Promise<HistoryRecord[]> {
  let text: string;
  try {
    text = await readNoFollow(layout.historyFile);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw fsError('read', layout.historyFile, e);
  }
  const out: HistoryRecord[] = [];
  for (const line of text.split('\n').slice(-limit - 1)) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as HistoryRecord);
    } catch {
      // A line torn by a crash mid-append is skipped; the others still count.
    }
  }
  return out.slice(-limit);
}
