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
import { commitIndex, planRollback } from './plan.ts';
import { databaseDriver } from '../database/backups.ts';
import { newBackupId } from '../database/retention.ts';
import { contractOf, schemaLevel } from './schema-facts.ts';
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
export interface RollbackOptions {
  to?: string | undefined;
  noRestart?: boolean;
  /** Put back the backup taken when the target was left (confirmed by the CLI). */
  restore?: boolean;
  /** Switch the code only, whatever the schema. */
  ignoreSchema?: boolean;
  /** Use a target that was changed after it was verified and installed. */
  force?: boolean;
}

export async function runRollback(config: Config, services: Services, opts: RollbackOptions): Promise<RollbackResult> {
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
    const current = await readCurrent(layout);
    const installed = await listInstalled(layout);
    const target = to ?? state.previous;
    const driver = databaseDriver(config);
    const db = schemaLevel(state, current ? await contractOf(layout, current) : null);
    const id = newBackupId(services.clock.now(), current, state.backups);
    if (opts.restore && opts.noRestart && config.service.units.length) {
      throw new CutoverError('E_USAGE', '--restore stops and starts the units around the restore', { hint: 'drop --no-restart' });
    }
    const plan = planRollback({
      current,
      previous: state.previous,
      installed,
      to,
      releasesDir: layout.releases,
      force: !!opts.force,
      activation: { units: opts.noRestart ? [] : config.service.units, health: config.health !== undefined },
      data: {
        target: target && installed.includes(target) ? await contractOf(layout, target) : null,
        db,
        configured: driver !== null,
        exists: driver ? await driver.exists() : false,
        backups: state.backups,
        restore: !!opts.restore,
        ignoreSchema: !!opts.ignoreSchema,
        backup: { id, file: `${id}${driver?.extension ?? ''}` },
      },
    });
    if (opts.ignoreSchema && db) services.reporter.warn(`--ignore-schema: switching the code only; the database stays on schema ${db.schema}`);
    // A rollback is what the operator asked for: if killed, the next run completes it.
    const ctx = engineContext(config, services, layout, state, new AbortController().signal);
    // With a restore, a killed rollback is undone instead (the data it replaced is put back).
    const restoring = plan.steps.some((s) => s.kind === 'restore');
    const done = await execute(ctx, {
      op: 'rollback',
      from: plan.from,
      to: plan.to,
      steps: plan.steps,
      recovery: restoring ? 'undo' : 'resume',
      commitAt: restoring ? commitIndex(plan.steps) : plan.steps.length - 1,
    });
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
