/**
 * `gc`: remove retained releases beyond `keep` (never current or previous; keep 0 leaves just
 * those two), and the pruning step `update` shares.
 */
import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf, type Layout } from '../layout/paths.ts';
import { listInstalled, removeRelease } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { acquireLock } from '../state/lock.ts';
import { appendHistory, writeState, type State } from '../state/state.ts';
import { planPrune } from './plan.ts';
import { guardInstallRoot } from './guard.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';

export interface GcResult {
  op: 'gc';
  kept: string[];
  pruned: string[];
}

export async function runGc(config: Config, services: Services, opts: { keep?: number | undefined }): Promise<GcResult> {
  const keep = opts.keep ?? config.keep;
  if (!Number.isInteger(keep) || keep < 0 || keep > 100) {
    throw new CutoverError('E_USAGE', `--keep must be a whole number from 0 to 100, got ${String(keep)}`, {
      hint: 'the previous release is always kept, so rollback keeps working: --keep 0 leaves current and previous',
    });
  }
  const layout = layoutOf(config.root);
  guardInstallRoot(config, layout, services.reporter, { create: false });
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

export async function prune(layout: Layout, state: State, versions: string[], services: Services): Promise<string[]> {
  const done: string[] = [];
  for (const v of versions) {
    services.reporter.step(`Removing old release v${v}`);
    try {
      await removeRelease(layout, v);
      delete state.installed[v];
      done.push(v);
    } catch (e) {
      services.reporter.warn(`could not remove v${v}: ${(e as Error).message}`);
    }
  }
  if (done.length) await writeState(layout, state);
  return done;
}
