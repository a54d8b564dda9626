import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf } from '../layout/paths.ts';
import { listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { checkVersion } from '../release/release-index.ts';
import { acquireLock } from '../state/lock.ts';
import { engineContext } from './context.ts';
import { execute } from './executor.ts';
import { guardInstallRoot } from './guard.ts';
import { planRollback } from './plan.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';
import { describeStep } from './steps.ts';

export interface RollbackResult {
  op: 'rollback';
  app: string;
  root: string;
  from: string | null;
  to: string;
  steps: Array<Record<string, unknown>>;
  durationMs: number;
}

/** Switch `current` back to the previous release, or to a named retained one. */
export async function runRollback(config: Config, services: Services, opts: { to?: string | undefined; noRestart?: boolean }): Promise<RollbackResult> {
  const started = services.clock.now();
  let to: string | undefined;
  if (opts.to !== undefined) {
    const checked = checkVersion(opts.to);
    if (!checked.ok) throw new CutoverError('E_USAGE', `--to ${checked.reason.replace(/^version /, '')}`, { hint: 'pass a version like v1.3.2' });
    to = checked.version;
  }
  const layout = layoutOf(config.root);
  guardInstallRoot(config, layout, services.reporter, { create: false });
  const lock = acquireLock(layout.lock, 'rollback');
  try {
    const { state } = await recover(config, services, layout);
    const plan = planRollback({
      current: await readCurrent(layout),
      previous: state.previous,
      installed: await listInstalled(layout),
      to,
      releasesDir: layout.releases,
      activation: { units: opts.noRestart ? [] : config.service.units, health: config.health !== undefined },
    });
    // A rollback is what the operator asked for: if killed, the next run completes it.
    const ctx = engineContext(config, services, layout, state, new AbortController().signal);
    const done = await execute(ctx, { op: 'rollback', from: plan.from, to: plan.to, steps: plan.steps, recovery: 'resume', commitAt: plan.steps.length - 1 });
    services.reporter.step(`${config.app} is now on v${plan.to}${plan.from ? ` (was v${plan.from})` : ''}`);
    return {
      op: 'rollback',
      app: config.app,
      root: config.root,
      from: plan.from,
      to: plan.to,
      steps: done.records.map(describeStep),
      durationMs: services.clock.now() - started,
    };
  } finally {
    lock.release();
  }
}
