import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import type { Layout } from '../layout/paths.ts';
import { CURRENT_TMP_PREFIX } from '../layout/paths.ts';
import { readCurrent } from '../layout/swap.ts';
import { emptyPrivateDir } from '../layout/trusted-path.ts';
import { appendHistory, readState, writeState, type State } from '../state/state.ts';
import { activate } from './activate.ts';
import type { Services } from './services.ts';
import { switchTo } from './switch.ts';

export interface Recovery {
  removed: string[];
  pending: 'none' | 'completed' | 'undone';
}

/**
 * Run under the lock before any mutating operation: clear what a killed run left behind
 * (staging, downloads, trash, temporary links) and settle a switch that was recorded as pending.
 *
 * `current` itself is always whole (rename(2)). Without units to restart, settling is
 * bookkeeping. With units, a switch whose health was never confirmed is not trusted: an
 * interrupted update is undone (back to the release it replaced, units restarted and checked);
 * an interrupted rollback is completed (units restarted on the release it went back to).
 */
export async function recover(config: Config, services: Services, layout: Layout): Promise<{ state: State; recovery: Recovery }> {
  const { reporter } = services;
  const removed: string[] = [];
  for (const dir of [layout.staging, layout.downloads, layout.trash]) {
    // Never followed: a link planted in place of one of these is removed, its target untouched.
    removed.push(...emptyPrivateDir(dir));
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
  const p = state.pending;
  if (p) {
    const current = await readCurrent(layout);
    const switched = current === p.to;
    const units = config.service.units.length > 0;
    const never = new AbortController().signal;
    let message = `interrupted ${p.op} (pid ${p.pid})`;
    if (!switched) {
      pending = 'undone';
      reporter.warn(`an interrupted ${p.op} to v${p.to} never switched; current stays v${current ?? '(none)'}`);
      state.pending = null;
      await writeState(layout, state);
    } else if (!units) {
      pending = 'completed';
      state.previous = p.from;
      state.pending = null;
      await writeState(layout, state);
      reporter.warn(`an interrupted ${p.op} had already switched to v${p.to}; recorded it as done`);
    } else if (p.op === 'update' && p.from !== null) {
      pending = 'undone';
      reporter.warn(`an interrupted update had switched to v${p.to} but never saw it healthy; returning to v${p.from}`);
      await switchTo(layout, state, p.to, p.from, 'rollback', services, { activating: true });
      const a = await activate(config, services, p.from, never);
      if (!a.ok) reporter.warn(`v${p.from} is not healthy after recovery: ${a.reason}`);
      message += a.ok ? `; back on v${p.from}, healthy` : `; back on v${p.from}, unhealthy: ${a.reason}`;
      state.pending = null;
      await writeState(layout, state);
    } else {
      pending = 'completed';
      reporter.warn(`an interrupted ${p.op} had switched to v${p.to}; restarting its units`);
      const a = await activate(config, services, p.to, never);
      if (!a.ok) reporter.warn(`v${p.to} is not healthy after recovery: ${a.reason}`);
      message += a.ok ? `; v${p.to} healthy` : `; v${p.to} unhealthy: ${a.reason}`;
      state.previous = p.from;
      state.pending = null;
      await writeState(layout, state);
    }
    await appendHistory(layout, { at: new Date().toISOString(), op: 'recover', from: p.from, to: p.to, result: pending, message });
  }
  return { state, recovery: { removed, pending } };
}
