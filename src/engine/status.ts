import type { Config } from '../config/config.ts';
import { layoutOf, releaseDir } from '../layout/paths.ts';
import { listInstalled, treeSize } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { readHistory, readState, type HistoryRecord } from '../state/state.ts';

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

