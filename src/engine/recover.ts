import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from '../layout/paths.ts';
import { CURRENT_TMP_PREFIX } from '../layout/paths.ts';
import { readCurrent } from '../layout/swap.ts';
import type { Reporter } from '../report.ts';
import { appendHistory, readState, writeState, type State } from '../state/state.ts';

export interface Recovery {
  removed: string[];
  pending: 'none' | 'completed' | 'undone';
}

/**
 * Run under the lock before any mutating operation: clear what a killed run left behind
 * (staging, downloads, trash, temporary links) and settle a switch that was recorded as pending.
 * `current` itself is always whole (rename(2)), so settling is only bookkeeping.
 */
export async function recover(layout: Layout, reporter: Reporter): Promise<{ state: State; recovery: Recovery }> {
  const removed: string[] = [];
  for (const dir of [layout.staging, layout.downloads, layout.trash]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) {
      await rm(path.join(dir, n), { recursive: true, force: true });
      removed.push(path.join(dir, n));
    }
  }
  const rootNames = await readdir(layout.root).catch(() => [] as string[]);
  for (const n of rootNames) {
    if (n.startsWith(CURRENT_TMP_PREFIX)) {
      await rm(path.join(layout.root, n), { force: true });
      removed.push(path.join(layout.root, n));
    }
  }
  if (removed.length) reporter.warn(`cleaned up ${removed.length} leftover(s) of an interrupted run`);

  const state = await readState(layout);
  let pending: Recovery['pending'] = 'none';
  if (state.pending) {
    const p = state.pending;
    const current = await readCurrent(layout);
    if (current === p.to) {
      state.previous = p.from;
      pending = 'completed';
      reporter.warn(`an interrupted ${p.op} had already switched to v${p.to}; recorded it as done`);
    } else {
      pending = 'undone';
      reporter.warn(`an interrupted ${p.op} to v${p.to} never switched; current stays v${current ?? '(none)'}`);
    }
    state.pending = null;
    await writeState(layout, state);
    await appendHistory(layout, {
      at: new Date().toISOString(),
      op: 'recover',
      from: p.from,
      to: p.to,
      result: pending,
      message: `interrupted ${p.op} (pid ${p.pid})`,
    });
  }
  return { state, recovery: { removed, pending } };
}
