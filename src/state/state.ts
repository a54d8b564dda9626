import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { writeFileAtomic } from '../layout/durable.ts';
import type { Layout } from '../layout/paths.ts';

/** An operation that started switching and has not been recorded as finished. */
export interface Pending {
  op: 'update' | 'rollback';
  from: string | null;
  to: string;
  startedAt: string;
  pid: number;
  /** switching: the symlink may or may not have moved. activating: it moved; units not yet healthy. */
  phase?: 'switching' | 'activating';
}

export interface InstalledRecord {
  sha256: string;
  installedAt: string;
  identity?: string;
}

export interface State {
  schema: 1;
  /** The release `current` pointed at before the last switch: `rollback` goes there. */
  previous: string | null;
  /** Releases that failed after being switched to; never installed again automatically. */
  bad: string[];
  pending: Pending | null;
  installed: Record<string, InstalledRecord>;
}

export function emptyState(): State {
  return { schema: 1, previous: null, bad: [], pending: null, installed: {} };
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
    const s = JSON.parse(text) as Partial<State>;
    if (s.schema !== 1) throw new Error(`unknown schema ${String(s.schema)}`);
    return { ...emptyState(), ...s } as State;
  } catch (e) {
    throw new CutoverError('E_LAYOUT', `state file ${layout.stateFile} is corrupt: ${(e as Error).message}`, {
      hint: 'move it aside; cutover rebuilds what it can from releases/ and current',
      cause: e,
    });
  }
}

export async function writeState(layout: Layout, state: State): Promise<void> {
  await writeFileAtomic(layout.stateFile, `${JSON.stringify(state, null, 2)}\n`, 0o644);
}

export interface HistoryRecord {
  at: string;
  op: 'update' | 'rollback' | 'gc' | 'recover';
  from: string | null;
  to: string | null;
  result: 'ok' | 'noop' | 'failed' | 'completed' | 'undone';
  code?: string;
  message?: string;
  durationMs?: number;
  pruned?: string[];
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
