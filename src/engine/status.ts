import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf, releaseDir } from '../layout/paths.ts';
import { listInstalled, treeSize } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { acquireLock } from '../state/lock.ts';
import { appendHistory, readHistory, readState, type HistoryRecord } from '../state/state.ts';
import { planPrune } from './plan.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';
import { prune } from './update.ts';

export interface StatusResult {
  app: string;
  root: string;
  current: string | null;
  previous: string | null;
  installed: string[];
  bad: string[];
  pending: boolean;
  lastOperation: HistoryRecord | null;
}

export async function getStatus(config: Config): Promise<StatusResult> {
  const layout = layoutOf(config.root);
  const state = await readState(layout);
  const history = await readHistory(layout, 1);
  return {
    app: config.app,
    root: config.root,
    current: await readCurrent(layout),
    previous: state.previous,
    installed: await listInstalled(layout),
    bad: state.bad,
    pending: state.pending !== null,
    lastOperation: history[history.length - 1] ?? null,
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

export async function listReleases(config: Config): Promise<ListedRelease[]> {
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

export interface GcResult {
  op: 'gc';
  kept: string[];
  pruned: string[];
}

export async function runGc(config: Config, services: Services, opts: { keep?: number | undefined }): Promise<GcResult> {
  const keep = opts.keep ?? config.keep;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new CutoverError('E_USAGE', `--keep must be a whole number of at least 1, got ${String(opts.keep)}`, {
      hint: 'the previous release is always kept, so rollback keeps working',
    });
  }
  const layout = layoutOf(config.root);
  const lock = acquireLock(layout.lock, 'gc');
  try {
    const { state } = await recover(config, services, layout);
    const installed = await listInstalled(layout);
    const current = await readCurrent(layout);
    const doomed = planPrune({ installed, current, previous: state.previous, keep });
    const pruned = await prune(layout, state, doomed, services);
    if (pruned.length) {
      await appendHistory(layout, { at: new Date().toISOString(), op: 'gc', from: null, to: null, result: 'ok', pruned });
    } else {
      services.reporter.step('nothing to remove');
    }
    return { op: 'gc', kept: installed.filter((v) => !pruned.includes(v)), pruned };
  } finally {
    lock.release();
  }
}
