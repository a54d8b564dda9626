/**
 * The steps that touch the app's database and the units around it: stop, backup, migrate,
 * start, restore, record-schema, prune-backups, and the dry run's pending list and rehearsal.
 * The safety net is the backup step's undo: when a later step changed the database (a migration,
 * the new release's start, a restore), it puts the backup back while the units are stopped.
 */
import { closeSync, constants, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { formatDuration } from '../config/duration.ts';
import { checkBackup, checkBackupSpace, findBackup, openBackupDir, takeBackup } from '../database/backups.ts';
import type { DatabaseDriver } from '../database/driver.ts';
import { compactStamp } from '../database/retention.ts';
import { CutoverError } from '../errors.ts';
import { releaseDir } from '../layout/paths.ts';
import { readCurrent } from '../layout/swap.ts';
import { ensurePrivateDir } from '../layout/trusted-path.ts';
import { formatBytes } from '../report.ts';
import { describeRun, killLeftover, processStart, runAs, type RunAsResult } from '../system/run-as.ts';
import { bringUp, gateReason, restartTimeout, type Handler, type StepContext } from './handlers.ts';
import type { Step, StepRecord } from './steps.ts';

type H<K extends Step['kind']> = Handler<Extract<Step, { kind: K }>>;

function driverOf(ctx: StepContext): DatabaseDriver {
  if (!ctx.database) throw new Error('a database step ran without [database]');
  return ctx.database;
}

/** A step that ran (even if it failed, or was undone since) may have changed the database. */
const changedStatuses = new Set(['done', 'running', 'failed', 'undone']);

/**
 * The migration did not finish: a `migrate` step that ran with nothing after it ever started (its
 * own status may say `undone` by now); or, for a release without `migrate` (it migrates itself
 * when it starts), a start that ran while the gate never did.
 */
function migrationCutShort(later: StepRecord[]): boolean {
  if (later.some((r) => r.step.kind === 'migrate')) {
    return later.some((r, i) => r.step.kind === 'migrate' && changedStatuses.has(r.status) && later.slice(i + 1).every((n) => n.status === 'pending'));
  }
  const gateRan = later.some((r) => r.step.kind === 'gate' && r.status !== 'pending');
  return !gateRan && later.some((r) => r.step.kind === 'start' && changedStatuses.has(r.status));
}

/** What the steps after `step` did to the database, as the journal tells it (undone steps had run). */
function laterChanges(ctx: StepContext, step: Step): { migrated: boolean; migrateFailed: boolean; started: boolean; restored: boolean } {
  const at = ctx.journal.steps.findIndex((r) => r.step === step);
  const later = ctx.journal.steps.slice(at + 1);
  const ran = (kind: Step['kind']): boolean => later.some((r) => r.step.kind === kind && changedStatuses.has(r.status));
  return {
    migrated: ran('migrate'),
    migrateFailed: migrationCutShort(later),
    started: ran('start'),
    restored: ran('restore'),
  };
}

const stop: H<'stop'> = {
  async do(step, ctx) {
    const { reporter, serviceManager } = ctx.services;
    for (const unit of step.units) {
      reporter.step(`Stopping ${unit}`);
      const r = await serviceManager.stop(unit, restartTimeout(ctx));
      if (!r.ok) {
        throw new CutoverError('E_UNHEALTHY', `could not stop ${unit} before changing the database: ${r.reason}`, {
          hint: `nothing was changed; look at \`systemctl status ${unit}\``,
          details: { unit, reason: r.reason },
        });
      }
    }
  },
  /** Start them again (restart: one pulled up meanwhile must not keep new code), in their own order, on whatever `current` is now, and gate that. */
  async undo(step, ctx) {
    const { reporter, serviceManager, health } = ctx.services;
    const c = laterChanges(ctx, step);
    if (step.unguarded && (c.migrated || c.started)) {
      throw new CutoverError(
        'E_ROLLBACK_FAILED',
        `v${ctx.journal.to ?? '?'} changed the database and there is no backup to put it back (no [database] backup before this schema change), so ${step.units.join(', ')} stay stopped rather than run v${ctx.journal.from ?? '?'} on it`,
        {
          hint: 'restore the database from your own backup, then start the units; or install a release built for the new schema',
          details: { units: step.units },
        },
      );
    }
    const started = ctx.services.clock.now();
    const version = (await readCurrent(ctx.layout)) ?? '(none)';
    const units = [...step.units].reverse();
    for (const unit of units) {
      reporter.step(`Starting ${unit}`);
      await serviceManager.resetFailed(unit);
      const r = await serviceManager.restart(unit, restartTimeout(ctx));
      if (!r.ok) throw new CutoverError('E_ROLLBACK_FAILED', `${unit} does not start again on v${version}: ${r.reason}`, { details: { current: version } });
    }
    if (health) {
      const gate = await health.gate(version, { signal: new AbortController().signal });
      if (!gate.healthy)
        throw new CutoverError('E_ROLLBACK_FAILED', `v${version} is not healthy after starting it again: ${gateReason(gate)}`, {
          details: { current: version },
        });
    }
    return `started ${units.join(', ')} on v${version}${health ? ', which is healthy again' : ''} (in ${formatDuration(ctx.services.clock.now() - started)})`;
  },
};

const backup: H<'backup'> = {
  async do(step, ctx) {
    const driver = driverOf(ctx);
    const { reporter } = ctx.services;
    const dir = openBackupDir(ctx.backup.dir);
    const estimate = await driver.estimateBytes();
    await checkBackupSpace(dir, estimate, ctx.backup.reserve);
    const file = path.join(dir, step.file);
    reporter.step(`Backing up the database (${driver.describe}${step.schema !== null ? `, schema ${step.schema}` : ''}) to ${file}`);
    const rec = await takeBackup(
      driver,
      file,
      {
        id: step.id,
        version: step.version,
        schema: step.schema,
        rollbackSafe: step.rollbackSafe,
        reason: step.reason,
        created: new Date(ctx.services.clock.now()).toISOString(),
        file: step.file,
      },
      ctx.signal,
    );
    ctx.state.backups.push(rec);
    reporter.step(`Backup ${rec.id}: ${formatBytes(rec.bytes)}, sha256 ${rec.sha256}`);
  },
  async undo(step, ctx) {
    const driver = driverOf(ctx);
    const c = laterChanges(ctx, step);
    const rec = ctx.state.backups.find((b) => b.id === step.id);
    if (!c.migrated && !c.started && !c.restored) {
      // Killed while writing it: a partial file is not a backup.
      if (!rec) await rm(path.join(ctx.backup.dir, step.file), { force: true });
      return undefined;
    }
    const to = ctx.journal.to;
    if (step.compatible && !c.migrateFailed && !c.restored) {
      // Kept: the database is on the failed release's schema now, and that is what is recorded.
      if (step.keeps) ctx.state.database = { ...step.keeps, at: new Date(ctx.services.clock.now()).toISOString(), via: 'migrate' };
      return `kept the database as v${to} left it: the release switched back to runs on its schema (rollback_safe_schema)`;
    }
    if (!rec)
      throw new CutoverError('E_ROLLBACK_FAILED', `the database was changed but backup ${step.id} was never completed`, { details: { backup: step.id } });
    const file = path.join(ctx.backup.dir, rec.file);
    try {
      await checkBackup(driver, ctx.backup.dir, rec);
      // Nothing may run while the data goes back, not even a unit a dependency or a socket pulled up.
      for (const unit of [...ctx.units].reverse()) {
        const r = await ctx.services.serviceManager.stop(unit, restartTimeout(ctx));
        if (!r.ok) throw new Error(`${unit} could not be stopped before the restore: ${r.reason}`);
      }
      ctx.services.reporter.step(`Restoring the database from backup ${rec.id}`);
      await driver.restore(file);
    } catch (e) {
      const what = c.restored ? `a restore from another backup` : c.migrated ? `the migration of v${to}` : `v${to} while it ran`;
      throw new CutoverError(
        'E_ROLLBACK_FAILED',
        `restoring the database from backup ${rec.id} failed: ${(e as Error).message}; the database holds what ${what} left`,
        {
          hint: `restore it by hand: ${driver.manualRestore(file)}`,
          details: { backup: rec.id, file },
          cause: e,
        },
      );
    }
    ctx.scratch.restoredFrom = rec.id;
    return `restored the database from backup ${rec.id}${c.started && !c.restored ? ` (what v${to} wrote while it ran was discarded)` : ''}`;
  },
};

function migrationEnv(
  ctx: StepContext,
  s: { version: string; from: string | null; schemaFrom: number | null; schemaTo: number },
  dbEnv: Record<string, string>,
) {
  return {
    CUTOVER_APP: ctx.app,
    CUTOVER_FROM: s.from ?? '',
    CUTOVER_TO: s.version,
    CUTOVER_SCHEMA_FROM: s.schemaFrom === null ? '' : String(s.schemaFrom),
    CUTOVER_SCHEMA_TO: String(s.schemaTo),
    ...dbEnv,
  };
}

function userOf(ctx: StepContext) {
  if (!ctx.user) {
    throw new CutoverError('E_CONFIG', 'the release declares a migration, but the config names no `user` to run it as', {
      hint: 'set `user` in cutover.toml to the account the app runs as (migrations never run as root)',
    });
  }
  return ctx.user;
}

function stamp(ctx: StepContext): string {
  return compactStamp(ctx.services.clock.now());
}

function migrateFailed(what: string, r: RunAsResult, extra: string): CutoverError {
  const tail = r.tail.trim().split('\n').slice(-3).join(' | ');
  return new CutoverError(
    r.interrupted ? 'E_INTERRUPTED' : 'E_MIGRATE_FAILED',
    `${what} ${describeRun(r)} (log: ${r.logFile}${tail ? `; last lines: ${tail}` : ''})`,
    {
      hint: `read the log${extra}; tell the vendor if the migration is at fault`,
      details: { log: r.logFile, tail: r.tail, exitCode: r.exitCode, timedOut: r.timedOut },
    },
  );
}

const migrate: H<'migrate'> = {
  async do(step, ctx) {
    const user = userOf(ctx);
    ensurePrivateDir(ctx.layout.logs);
    const log = path.join(ctx.layout.logs, `migrate-v${step.version}-${stamp(ctx)}.log`);
    ctx.services.reporter.step(
      `Migrating the database: schema ${step.schemaFrom ?? '(none)'} -> ${step.schemaTo} (${step.argv.join(' ')}, as ${user.name}; log ${log})`,
    );
    const r = await runAs({
      argv: step.argv,
      cwd: releaseDir(ctx.layout, step.version),
      user,
      env: migrationEnv(ctx, step, ctx.database?.env ?? {}),
      timeoutMs: ctx.migrate.timeoutMs,
      logFile: log,
      live: ctx.live,
      signal: ctx.signal,
      onSpawn: (pid) => rememberMigration(ctx, pid),
    });
    await rm(migrationPidFile(ctx), { force: true });
    if (r.exitCode === 0 && !r.timedOut && !r.interrupted) {
      ctx.services.reporter.step(`Migration done in ${formatDuration(r.ms)}`);
      return;
    }
    throw migrateFailed(
      `the migration of v${step.version} (schema ${step.schemaFrom ?? '(none)'} -> ${step.schemaTo})`,
      r,
      step.backup ? ` (backup ${step.backup} is restored)` : '',
    );
  },
  undo(_step, ctx) {
    return endLeftoverMigration(ctx);
  },
};

/** After a crash the migration may still be running (it has a process group of its own): end it before anything else. */
async function endLeftoverMigration(ctx: StepContext): Promise<string | undefined> {
  const file = migrationPidFile(ctx);
  let left: { pid: number; start: string } | undefined;
  try {
    left = JSON.parse(readFileSync(file, 'utf8')) as { pid: number; start: string };
  } catch {
    return undefined;
  }
  const killed = await killLeftover(left.pid, left.start);
  await rm(file, { force: true });
  return killed ? `killed the migration left running (pid ${left.pid})` : undefined;
}

function migrationPidFile(ctx: StepContext): string {
  return path.join(ctx.layout.state, 'migrate.pid');
}

/** Written the moment the migration runs: a cutover killed now leaves the next run a way to end it. */
function rememberMigration(ctx: StepContext, pid: number): void {
  const start = processStart(pid);
  if (start === null) return;
  try {
    const fd = openSync(migrationPidFile(ctx), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, JSON.stringify({ pid, start }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Unrecorded, a migration could outlive a crash unseen: it does not run at all (the run fails, the backup goes back).
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const start: H<'start'> = {
  do: (step, ctx) => bringUp(step.unit, ctx, 'start'),
  /** It ran the new code: stop it again before the database is put back. */
  async undo(step, ctx) {
    const r = await ctx.services.serviceManager.stop(step.unit, restartTimeout(ctx));
    if (!r.ok) throw new CutoverError('E_ROLLBACK_FAILED', `could not stop ${step.unit} to undo its start: ${r.reason}`, { details: { unit: step.unit } });
    return undefined;
  },
};

const checkBackupStep: H<'check-backup'> = {
  async do(step, ctx) {
    await checkBackup(driverOf(ctx), ctx.backup.dir, findBackup(ctx.state, step.id));
  },
};

const restore: H<'restore'> = {
  async do(step, ctx) {
    const driver = driverOf(ctx);
    const rec = findBackup(ctx.state, step.id);
    const file = await checkBackup(driver, ctx.backup.dir, rec);
    ctx.services.reporter.step(`Restoring the database from backup ${rec.id} (taken on v${rec.version ?? '(none)'}, schema ${rec.schema ?? 'unknown'})`);
    await driver.restore(file);
  },
};

const recordSchema: H<'record-schema'> = {
  do(step, ctx) {
    ctx.state.database =
      step.schema === null
        ? null
        : {
            schema: step.schema,
            rollbackSafe: step.rollbackSafe ?? step.schema,
            version: step.version,
            at: new Date(ctx.services.clock.now()).toISOString(),
            via: step.via,
          };
    return Promise.resolve();
  },
};

const pruneBackups: H<'prune-backups'> = {
  async do(step, ctx) {
    for (const id of step.ids) {
      const rec = ctx.state.backups.find((b) => b.id === id);
      if (!rec) continue;
      ctx.services.reporter.step(`Removing old backup ${id}`);
      try {
        await rm(path.join(ctx.backup.dir, rec.file), { force: true });
        ctx.state.backups = ctx.state.backups.filter((b) => b.id !== id);
      } catch (e) {
        ctx.services.reporter.warn(`could not remove backup ${id}: ${(e as Error).message}`);
      }
    }
  },
};

/**
 * A dry run's staged release lives in a private sandbox; the account that runs the release's
 * lister or rehearsal must be able to reach it (read and execute, never write).
 */
async function releaseForUser(ctx: StepContext, version: string): Promise<string> {
  const staged = ctx.scratch.staged?.dir;
  if (!staged || !ctx.sandbox) return releaseDir(ctx.layout, version);
  await chmod(ctx.sandbox.dir, 0o711);
  await chmod(ctx.sandbox.staging, 0o711);
  await chmod(staged, 0o755);
  return staged;
}

async function sandboxLog(ctx: StepContext, name: string): Promise<string> {
  const dir = ctx.sandbox ? path.join(ctx.sandbox.dir, 'logs') : ctx.layout.logs;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return path.join(dir, `${name}-${stamp(ctx)}.log`);
}

const pending: H<'pending'> = {
  async do(step, ctx) {
    const user = userOf(ctx);
    const r = await runAs({
      argv: step.argv,
      cwd: await releaseForUser(ctx, step.version),
      user,
      env: migrationEnv(ctx, { ...step, from: ctx.journal.from }, ctx.database?.env ?? {}),
      timeoutMs: Math.min(ctx.migrate.timeoutMs, 300_000),
      logFile: await sandboxLog(ctx, 'pending'),
      signal: ctx.signal,
      captureStdout: true,
    });
    if (r.exitCode !== 0 || r.timedOut || r.interrupted) throw migrateFailed(`listing the pending migrations of v${step.version}`, r, '');
    const list = (r.stdout ?? '').split('\n').filter((l) => l.trim() !== '');
    ctx.scratch.pending = list;
    ctx.services.reporter.step(list.length ? `Pending migrations (${list.length}):\n${list.map((l) => `  ${l}`).join('\n')}` : 'Pending migrations: none');
  },
};

const rehearse: H<'rehearse'> = {
  async do(step, ctx) {
    const user = userOf(ctx);
    const driver = ctx.database;
    if (!driver?.scratchCopy || !ctx.sandbox)
      throw new CutoverError('E_USAGE', `--rehearse needs a [database] of kind "sqlite" or "postgres"`, { hint: 'drop --rehearse' });
    const cwd = await releaseForUser(ctx, step.version);
    ctx.services.reporter.step(`Rehearsing the migration on a copy of the database (schema ${step.schemaFrom ?? '(none)'} -> ${step.schemaTo})`);
    const copy = await driver.scratchCopy(ctx.sandbox.dir, ctx.signal);
    try {
      const r = await runAs({
        argv: step.argv,
        cwd,
        user,
        env: migrationEnv(ctx, step, copy.env),
        timeoutMs: ctx.migrate.timeoutMs,
        logFile: await sandboxLog(ctx, 'rehearse'),
        live: ctx.live,
        signal: ctx.signal,
      });
      if (r.exitCode !== 0 || r.timedOut || r.interrupted)
        throw migrateFailed(`the rehearsed migration of v${step.version}`, r, '; the live database was not touched');
      ctx.scratch.rehearsed = { ms: r.ms };
      ctx.services.reporter.step(`Rehearsal passed: the migration succeeded on a copy in ${formatDuration(r.ms)}; the live database was only read`);
    } finally {
      await copy.drop();
    }
  },
};

export const DATA_HANDLERS = {
  stop,
  backup,
  migrate,
  start,
  'check-backup': checkBackupStep,
  restore,
  'record-schema': recordSchema,
  'prune-backups': pruneBackups,
  pending,
  rehearse,
};
