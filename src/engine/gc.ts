/**
 * `gc`: remove retained releases beyond `keep` (never current or previous; keep 0 leaves just
 * those two), as one `prune` step through the executor.
 */
import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf } from '../layout/paths.ts';
import { listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { acquireLock } from '../state/lock.ts';
import { engineContext } from './context.ts';
import { execute } from './executor.ts';
import { guardInstallRoot } from './guard.ts';
import { planGc } from './plan.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';

export interface GcResult {
  op: 'gc';
  kept: string[];
  pruned: string[];
  /** Backups removed (beyond `[backup] keep`). */
  prunedBackups: string[];
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
    const steps = planGc({
      installed,
      current: await readCurrent(layout),
      previous: state.previous,
      keep,
      ...(config.database ? { backups: state.backups, backupKeep: config.backup.keep } : {}),
    });
    if (!steps.length) {
      services.reporter.step('nothing to remove');
      return { op: 'gc', kept: installed, pruned: [], prunedBackups: [] };
    }
    const ctx = engineContext(config, services, layout, state, new AbortController().signal);
    const done = await execute(ctx, { op: 'gc', from: null, to: null, steps, recovery: 'resume', commitAt: 0 });
    const pruned = done.scratch.pruned;
    const prunedBackups = steps.flatMap((s) => (s.kind === 'prune-backups' ? s.ids.filter((id) => !state.backups.some((b) => b.id === id)) : []));
    return { op: 'gc', kept: installed.filter((v) => !pruned.includes(v)), pruned, prunedBackups };
  } finally {
    lock.release();
  }
}
