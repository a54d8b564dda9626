/**
 * `backups`, `backup` and `restore ID`: the database backups cutover keeps, as steps through the
 * executor like every other operation (a killed restore is undone from the journal).
 */
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { databaseDriver, findBackup } from '../database/backups.ts';
import { newBackupId, pendingBackup, planBackupPrune, protectedBy } from '../database/retention.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf } from '../layout/paths.ts';
import { listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { acquireLock } from '../state/lock.ts';
import { readState } from '../state/state.ts';
import { engineContext } from './context.ts';
import { execute } from './executor.ts';
import { guardInstallRoot } from './guard.ts';
import { commitIndex, planRestoreSteps } from './plan.ts';
import { recover } from './recover.ts';
import { contractOf, schemaLevel } from './schema-facts.ts';
import type { Services } from './services.ts';
import { describeStep, type Step } from './steps.ts';

export interface ListedBackup {
  id: string;
  version: string | null;
  schema: number | null;
  reason: string;
  created: string;
  file: string;
  bytes: number;
  sha256: string;
  /** The retained release this backup would bring back, or null. */
  protects: string | null;
}

export async function listBackups(config: Pick<Config, 'root' | 'backup'>): Promise<ListedBackup[]> {
  const layout = layoutOf(config.root);
  const state = await readState(layout);
  const guarded = protectedBy(state.backups, await listInstalled(layout).catch(() => []), await readCurrent(layout).catch(() => null));
  return state.backups.map((b) => ({
    id: b.id,
    version: b.version,
    schema: b.schema,
    reason: b.reason,
    created: b.created,
    file: path.join(config.backup.dir, b.file),
    bytes: b.bytes,
    sha256: b.sha256,
    protects: guarded.get(b.id) ?? null,
  }));
}

function needDatabase(config: Config) {
  const driver = databaseDriver(config);
  if (!driver)
    throw new CutoverError('E_USAGE', 'the config has no [database] to back up or restore', { hint: 'add a [database] section (see docs/configuration.md)' });
  return driver;
}

export interface BackupOpResult {
  op: 'backup' | 'restore';
  id: string;
  steps: Array<Record<string, unknown>>;
  durationMs: number;
}

/** `backup`: one now, with the app running (SQLite's online backup and pg_dump are consistent). */
export async function runBackup(config: Config, services: Services): Promise<BackupOpResult> {
  const started = services.clock.now();
  const driver = needDatabase(config);
  const layout = layoutOf(config.root);
  guardInstallRoot(config, layout, services.reporter, { create: false });
  const lock = acquireLock(layout.lock, 'backup');
  try {
    const { state } = await recover(config, services, layout);
    if (!(await driver.exists()))
      throw new CutoverError('E_BACKUP_FAILED', `the database ${driver.describe} does not exist yet`, { hint: 'nothing to back up' });
    const current = await readCurrent(layout);
    const db = schemaLevel(state, current ? await contractOf(layout, current) : null);
    const id = newBackupId(services.clock.now(), current, state.backups);
    const steps: Step[] = [
      {
        kind: 'backup',
        id,
        file: `${id}${driver.extension}`,
        version: current,
        schema: db?.schema ?? null,
        rollbackSafe: db?.rollbackSafe ?? null,
        reason: 'manual',
        compatible: true,
      },
    ];
    const prune = planBackupPrune([...state.backups, pendingBackup(id, current)], await listInstalled(layout), current, config.backup.keep).filter(
      (b) => b !== id,
    );
    if (prune.length) steps.push({ kind: 'prune-backups', ids: prune });
    const ctx = engineContext(config, services, layout, state, new AbortController().signal);
    const done = await execute(ctx, { op: 'backup', from: current, to: current, steps, recovery: 'undo', commitAt: 0 });
    return { op: 'backup', id, steps: done.records.map(describeStep), durationMs: services.clock.now() - started };
  } finally {
    lock.release();
  }
}

/** `restore ID`: the current release stays; the database goes back to the backup (guarded like `rollback --restore`). */
export async function runRestore(config: Config, services: Services, opts: { id: string; ignoreSchema: boolean }): Promise<BackupOpResult> {
  const started = services.clock.now();
  const driver = needDatabase(config);
  const layout = layoutOf(config.root);
  guardInstallRoot(config, layout, services.reporter, { create: false });
  const lock = acquireLock(layout.lock, 'restore');
  try {
    const { state } = await recover(config, services, layout);
    const saved = findBackup(state, opts.id);
    const current = await readCurrent(layout);
    const runsOn = current ? ((await contractOf(layout, current))?.schema ?? null) : null;
    if (saved.schema !== null && runsOn !== null && saved.schema !== runsOn && !opts.ignoreSchema) {
      throw new CutoverError(
        'E_BACKUP_SCHEMA',
        `backup ${saved.id} holds schema ${saved.schema}, but the current release v${current} runs on schema ${runsOn}`,
        {
          hint: saved.version
            ? `\`rollback --to v${saved.version} --restore\` brings back the release it was taken on; or pass --ignore-schema`
            : 'pass --ignore-schema to restore it anyway',
          details: { backup: saved.id, schema: saved.schema, current: runsOn },
        },
      );
    }
    const db = schemaLevel(state, current ? await contractOf(layout, current) : null);
    const id = newBackupId(services.clock.now(), current, state.backups);
    const plan = planRestoreSteps({
      from: current,
      to: null,
      previous: state.previous,
      activation: { units: config.service.units, health: config.health !== undefined },
      saved,
      safety: (await driver.exists()) ? { id, file: `${id}${driver.extension}` } : null,
      db,
      record: !opts.ignoreSchema,
    });
    const ctx = engineContext(config, services, layout, state, new AbortController().signal);
    const done = await execute(ctx, { op: 'restore', from: current, to: current, steps: plan.steps, recovery: 'undo', commitAt: commitIndex(plan.steps) });
    services.reporter.step(
      `the database is back to backup ${saved.id}${plan.steps.some((s) => s.kind === 'backup') ? ` (what it replaced is in backup ${id})` : ''}`,
    );
    return { op: 'restore', id: saved.id, steps: done.records.map(describeStep), durationMs: services.clock.now() - started };
  } finally {
    lock.release();
  }
}
