import type { Config } from '../config/config.ts';
import { layoutOf, releaseDir } from '../layout/paths.ts';
import { listInstalled, treeSize } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { readHistory, readState, type DatabaseRecord, type HistoryRecord } from '../state/state.ts';
import { interruptedAt, recoveryVerdict } from './executor.ts';

export interface StatusResult {
  app: string;
  root: string;
  current: string | null;
  previous: string | null;
  installed: string[];
  bad: string[];
  /** An operation was interrupted (killed) and is still in the journal. */
  pending: boolean;
  interrupted: Interrupted | null;
  lastOperation: HistoryRecord | null;
  /** The database's schema as cutover last recorded it (null: none recorded). */
  database: DatabaseRecord | null;
}

export interface Interrupted {
  op: string;
  from: string | null;
  to: string | null;
  pid: number;
  startedAt: string;
  /** The step it was in (or last finished), 1-based, and of how many. */
  step: string | null;
  position: number;
  of: number;
  /** What the next command that takes the lock does with it. */
  next: 'undo' | 'complete';
}

export async function getStatus(config: Pick<Config, 'app' | 'root'>): Promise<StatusResult> {
  const layout = layoutOf(config.root);
  const state = await readState(layout);
  const j = state.journal;
  const at = j ? interruptedAt(j) : null;
  const interrupted: Interrupted | null = j
    ? {
        op: j.op,
        from: j.from,
        to: j.to,
        pid: j.pid,
        startedAt: j.startedAt,
        step: at?.step.kind ?? null,
        position: (at?.index ?? -1) + 1,
        of: j.steps.length,
        next: recoveryVerdict(j),
      }
    : state.legacyPending
      ? {
          op: state.legacyPending.op,
          from: state.legacyPending.from,
          to: state.legacyPending.to,
          pid: state.legacyPending.pid,
          startedAt: state.legacyPending.startedAt,
          step: 'switch',
          position: 1,
          of: 1,
          next: state.legacyPending.op === 'rollback' ? 'complete' : 'undo',
        }
      : null;
  const history = await readHistory(layout, 1);
  return {
    app: config.app,
    root: config.root,
    current: await readCurrent(layout),
    previous: state.previous,
    installed: await listInstalled(layout),
    bad: state.bad,
    pending: interrupted !== null,
    interrupted,
    lastOperation: history[history.length - 1] ?? null,
    database: state.database,
  };
}

export interface ListedRelease {
  version: string;
  current: boolean;
  previous: boolean;
  bad: boolean;
  installedAt: string | null;
  sha256: string | null;
  files: number;
  bytes: number;
}

export async function listReleases(config: Pick<Config, 'root'>): Promise<ListedRelease[]> {
  const layout = layoutOf(config.root);
  const state = await readState(layout);
  const current = await readCurrent(layout);
  const out: ListedRelease[] = [];
  for (const v of await listInstalled(layout)) {
    const size = await treeSize(releaseDir(layout, v));
    const rec = state.installed[v];
    out.push({
      version: v,
      current: v === current,
      previous: v === state.previous,
      bad: state.bad.includes(v),
      installedAt: rec?.installedAt ?? null,
      sha256: rec?.sha256 ?? null,
      ...size,
    });
  }
  return out;
}
