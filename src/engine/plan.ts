/**
 * The planner: from facts (config, state, what is installed, the index entry, the disk) to the
 * ordered steps of an operation. Pure: no I/O, no clock. Every refusal (downgrade, no previous,
 * not installed, no space) is decided here, before anything changes.
 */
import semver from 'semver';
import { CutoverError } from '../errors.ts';
import { formatBytes } from '../report.ts';
import type { Reserve } from '../config/size.ts';
import type { ReleaseEntry } from '../release/release-index.ts';
import { backupFor, pendingBackup, planBackupPrune } from '../database/retention.ts';
import { runsOn, type DataContract } from '../release/manifest.ts';
import type { BackupRecord } from '../state/state.ts';
import { planSpace, type SpacePlan } from './disk.ts';
import type { Step } from './steps.ts';

/** What restarting looks like for this operation: the units in order, and whether a gate follows. */
interface ActivationFacts {
  /** Units to restart, in order; empty with --no-restart or none configured. */
  units: string[];
  /** A [health] section exists: gate after the restarts (and pre-flight before an update). */
  health: boolean;
  /** --no-restart left configured units out. */
  skipped?: boolean;
}

/** The database's schema as cutover knows it. */
export interface SchemaLevel {
  schema: number;
  rollbackSafe: number;
}

/** What the planner needs to place the database steps. */
export interface DataFacts {
  /** The target's contract: the signed release.json once known, else what the index repeats. */
  target: DataContract;
  /** The database as recorded (else as the current release declares it); null: not known. */
  db: SchemaLevel | null;
  /** The schema the current release runs on (none declared: 0 once the database has one); null: no current release. */
  currentSchema: number | null;
  /** A [database] is configured, and whether it exists yet. */
  configured: boolean;
  exists: boolean;
  when: 'schema' | 'always' | 'never';
  /** Config `user`; migrations never run without one. */
  user: string | null;
  /** The id and file name a backup taken now would get. */
  backup: { id: string; file: string };
  backups: BackupRecord[];
  backupKeep: number;
  /** About how large a backup would be. */
  estimate: number;
  /** Free space where backups go, and what must stay free there (the [disk] reserve when it is the root's filesystem). */
  backupSpace?: { dir: string; free: number; reserve: number };
  /** The daemon with migrations = "manual": a schema change is refused. */
  manual?: boolean;
  /** Dry run: list pending migrations; --rehearse: migrate a copy. */
  dryRun?: { pending: boolean; rehearse: boolean };
}

export interface DiskFacts {
  free: number;
  total: number;
  reserve: Reserve | undefined;
  /** Installed releases other than current, previous and the target, with their size on disk. */
  prunable: Array<{ version: string; bytes: number }>;
}

export interface UpdateFacts {
  app: string;
  root: string;
  current: string | null;
  previous: string | null;
  installed: string[];
  release: ReleaseEntry;
  keep: number;
  allowDowngrade: boolean;
  /** The identity policy for this version ({version} expanded) and its issuer. */
  identity: string;
  issuer: string;
  activation: ActivationFacts;
  /** Pre-flight failures only warn (--force). */
  force: boolean;
  /** Absent: space is not planned (the caller measures it later or not at all). */
  disk?: DiskFacts;
  /** Absent: the database is not considered (no [database] and no schema anywhere). */
  data?: DataFacts;
}

/** What an update will do, worked out before anything is touched. Pure data. */
export interface UpdatePlan {
  app: string;
  root: string;
  from: string | null;
  to: string;
  /** install: download, verify, extract, switch. switch: already installed, only switch. noop: already current. */
  action: 'install' | 'switch' | 'noop';
  downgrade: boolean;
  release: ReleaseEntry;
  /** Releases that will be removed after the switch. */
  prune: string[];
  /** Which release `rollback` returns to after this update. */
  rollbackTarget: string | null;
  /** Releases removed before staging so that the new one fits. */
  pruneBefore: string[];
  space?: SpacePlan;
  /** The schema change this update makes, if any. */
  schema: { from: number | null; to: number } | null;
  steps: Step[];
}

export function planUpdate(f: UpdateFacts): UpdatePlan {
  const { current, release } = f;
  const base = { app: f.app, root: f.root, from: current, to: release.version, release, pruneBefore: [] as string[] };
  if (current === release.version) {
    return { ...base, action: 'noop', downgrade: false, prune: [], rollbackTarget: f.previous, schema: null, steps: [] };
  }
  const downgrade = current !== null && semver.valid(current) !== null && semver.lt(release.version, current);
  if (downgrade && !f.allowDowngrade) {
    throw new CutoverError('E_DOWNGRADE', `v${release.version} is older than the current v${current}`, {
      hint: `use \`rollback --to v${release.version}\` if it is retained, or pass --allow-downgrade`,
      details: { current, target: release.version },
    });
  }
  const retained = f.installed.includes(release.version);
  const after = retained ? f.installed : [...f.installed, release.version];
  let prune = planPrune({ installed: after, current: release.version, previous: current, keep: f.keep });

  const steps: Step[] = [];
  if (f.activation.units.length > 0 && f.activation.health && current !== null) steps.push({ kind: 'preflight', version: current, force: f.force });
  let space: SpacePlan | undefined;
  let pruneBefore: string[] = [];
  if (retained) {
    steps.push({ kind: 'check-retained', version: release.version, ...(f.force ? { force: true } : {}) });
  } else {
    steps.push({ kind: 'fetch-bundle', version: release.version, url: release.bundle.href });
    steps.push({ kind: 'verify', version: release.version, sha256: release.sha256, identity: f.identity, issuer: f.issuer });
    if (f.disk) {
      space = planSpace({
        version: release.version,
        root: f.root,
        free: f.disk.free,
        total: f.disk.total,
        reserve: f.disk.reserve,
        download: release.size,
        unpacked: release.unpackedSize,
        prunable: f.disk.prunable,
        prunedAnyway: prune,
      });
      pruneBefore = space.prune;
      prune = prune.filter((v) => !pruneBefore.includes(v));
      if (pruneBefore.length) steps.push({ kind: 'prune-before', versions: pruneBefore, need: space.need, available: space.available, reserve: space.reserve });
    }
    steps.push({
      kind: 'stage',
      version: release.version,
      url: release.artifact.href,
      size: release.size,
      sha256: release.sha256,
      unpackedSize: release.unpackedSize ?? null,
      budget: space ? space.budget : null,
    });
    steps.push({ kind: 'install', version: release.version });
  }
  const installedAfter = after.filter((v) => !prune.includes(v) && !pruneBefore.includes(v));
  const data = planData(f, installedAfter);
  steps.push(...data.steps);
  if (prune.length) steps.push({ kind: 'prune', versions: prune });
  return {
    schema: data.schema,
    ...base,
    action: retained ? 'switch' : 'install',
    downgrade,
    prune,
    pruneBefore,
    ...(space ? { space } : {}),
    rollbackTarget: current,
    steps,
  };
}

/** The schema change an update makes (null: none), refusing what may not be done. */
function schemaChange(f: UpdateFacts, d: DataFacts): { from: number | null; to: number } | null {
  const to = d.target.schema;
  if (to === null) return null;
  const db = d.db;
  if (db !== null && to === db.schema) return null;
  if (db !== null && to < db.schema) {
    // An older schema: only a release that still runs on the database's (rollback_safe_schema).
    if (runsOn(to, db)) return null;
    throw new CutoverError('E_SCHEMA_DOWNGRADE', `v${f.release.version} runs on schema ${to}, but the database is on schema ${db.schema}`, {
      hint: `a release never migrates a database down; use \`rollback --restore\` to go back to a release with its data, or tell the vendor`,
      details: { schema: to, database: db.schema },
    });
  }
  if (d.target.migrate && d.user === null) {
    throw new CutoverError('E_CONFIG', `v${f.release.version} declares a migration, but the config names no \`user\` to run it as`, {
      hint: 'set `user` in cutover.toml to the account the app runs as (migrations never run as root); nothing was changed',
    });
  }
  if (d.manual) {
    throw new CutoverError(
      'E_SCHEMA_MANUAL',
      `v${f.release.version} changes the database schema (${db?.schema ?? 'none'} -> ${to}); daemon.migrations = "manual"`,
      {
        hint: `run \`update --version v${f.release.version}\` by hand (see \`update --dry-run\` first); nothing was changed`,
        details: { schema: to, database: db?.schema ?? null },
      },
    );
  }
  if (f.activation.skipped) {
    throw new CutoverError(
      'E_USAGE',
      `v${f.release.version} changes the database schema (${db?.schema ?? 'none'} -> ${to}): the units must be stopped and started around it`,
      {
        hint: 'drop --no-restart',
      },
    );
  }
  return { from: db?.schema ?? null, to };
}

/**
 * The steps from the switch on. Without a schema change: switch, restarts, gate (with a backup
 * first when `when = "always"`). With one: stop the units (reverse order), back up, switch,
 * migrate, start the units in order, gate, record the schema; then prune old backups.
 */
function planData(f: UpdateFacts, installedAfter: string[]): { steps: Step[]; schema: { from: number | null; to: number } | null } {
  const from = f.current;
  const to = f.release.version;
  const d = f.data;
  if (!d) return { steps: activationSteps(from, to, f.previous, f.activation), schema: null };
  const change = schemaChange(f, d);
  const taken = d.configured && d.exists && (d.when === 'always' || (d.when === 'schema' && change !== null));
  // Checked before the units stop: a backup that cannot fit is refused while nothing has changed.
  if (taken && d.backupSpace && d.estimate + d.backupSpace.reserve > d.backupSpace.free) {
    const { dir, free, reserve } = d.backupSpace;
    throw new CutoverError(
      'E_BACKUP_FAILED',
      `not enough space in ${dir} for a backup of about ${formatBytes(d.estimate)} (${formatBytes(free)} free, ${formatBytes(reserve)} kept in reserve)`,
      {
        hint: 'free space there, move [backup] dir to a larger filesystem, or remove old backups; nothing was changed',
        details: { dir, free, reserve, estimate: d.estimate },
      },
    );
  }
  const backupStep = (compatible: boolean, keeps?: { version: string; schema: number; rollbackSafe: number }): Step => ({
    kind: 'backup',
    id: d.backup.id,
    file: d.backup.file,
    version: from,
    schema: d.db?.schema ?? null,
    rollbackSafe: d.db?.rollbackSafe ?? null,
    reason: from === null ? 'first-install' : 'update',
    compatible,
    ...(keeps ? { keeps } : {}),
  });
  const steps: Step[] = [];
  const { units, health } = f.activation;
  if (!change) {
    if (taken) steps.push(backupStep(true));
    steps.push(...activationSteps(from, to, f.previous, f.activation));
  } else {
    const target = d.target;
    const safe = target.rollbackSafeSchema ?? change.to;
    if (d.dryRun?.pending && target.migratePending)
      steps.push({ kind: 'pending', version: to, argv: target.migratePending, schemaFrom: change.from, schemaTo: change.to });
    if (d.dryRun?.rehearse && target.migrate)
      steps.push({ kind: 'rehearse', version: to, argv: target.migrate, from, schemaFrom: change.from, schemaTo: change.to });
    // The release switched back to (current) runs on the new schema when the new one's migrations only expand.
    const compatible = d.currentSchema !== null && runsOn(d.currentSchema, { schema: change.to, rollbackSafe: safe });
    if (from !== null && units.length) {
      steps.push({ kind: 'stop', units: [...units].reverse(), ...(!taken && !compatible && d.exists ? { unguarded: true } : {}) });
    }
    if (taken) steps.push(backupStep(compatible, compatible ? { version: to, schema: change.to, rollbackSafe: safe } : undefined));
    steps.push({ kind: 'switch', from, to, previous: f.previous });
    if (target.migrate) {
      steps.push({
        kind: 'migrate',
        version: to,
        argv: target.migrate,
        from,
        schemaFrom: change.from,
        schemaTo: change.to,
        backup: taken ? d.backup.id : null,
      });
    }
    steps.push(...units.map((unit): Step => ({ kind: 'start', unit })));
    if (units.length && health) steps.push({ kind: 'gate', version: to });
    steps.push({
      kind: 'record-schema',
      version: to,
      schema: change.to,
      rollbackSafe: safe,
      via: target.migrate ? 'migrate' : units.length ? 'start' : 'install',
    });
  }
  if (d.configured) {
    const after = taken ? [...d.backups, pendingBackup(d.backup.id, from)] : d.backups;
    const ids = planBackupPrune(after, installedAfter, to, d.backupKeep).filter((id) => id !== d.backup.id);
    if (ids.length) steps.push({ kind: 'prune-backups', ids });
  }
  return { steps, schema: change };
}

/** switch, then each unit's restart, then the gate when there is a [health] section. */
function activationSteps(from: string | null, to: string, previous: string | null, a: ActivationFacts): Step[] {
  const gated = a.units.length > 0 && a.health;
  return [
    { kind: 'switch', from, to, previous },
    ...a.units.map((unit): Step => ({ kind: 'restart', unit })),
    ...(gated ? [{ kind: 'gate', version: to } as Step] : []),
  ];
}

/**
 * Where the recorded operation counts as committed: after its gate, else its last restart,
 * else its switch. Recovery undoes an update killed before that point and completes one killed after.
 */
export function commitIndex(steps: Step[]): number {
  for (const kind of ['gate', 'restart', 'start', 'migrate', 'restore', 'switch'] as const) {
    const i = steps.map((s) => s.kind).lastIndexOf(kind);
    if (i >= 0) return i;
  }
  return steps.length - 1;
}

export interface RollbackFacts {
  current: string | null;
  previous: string | null;
  installed: string[];
  /** --to, already checked as a version; undefined: the previous release. */
  to: string | undefined;
  releasesDir: string;
  activation: ActivationFacts;
  /** --force: roll back onto a release that was changed after it was installed. */
  force?: boolean;
  /** Absent: the database is not considered. */
  data?: RollbackDataFacts;
}

interface RollbackDataFacts {
  /** The target's schema (a release that declares none counts as 0 once the database has one). */
  target: DataContract | null;
  db: SchemaLevel | null;
  configured: boolean;
  exists: boolean;
  backups: BackupRecord[];
  /** --restore: put back the backup taken when the target was left. */
  restore: boolean;
  /** --ignore-schema: switch the code only. */
  ignoreSchema: boolean;
  /** A safety backup of what the restore replaces. */
  backup: { id: string; file: string };
}

export interface RollbackPlan {
  from: string | null;
  to: string;
  steps: Step[];
}

export function planRollback(f: RollbackFacts): RollbackPlan {
  const target = f.to ?? f.previous;
  if (target === null || target === undefined) {
    throw new CutoverError('E_NO_PREVIOUS', 'there is no previous release to roll back to', {
      hint: 'use `rollback --to vX` with a release from `list`',
    });
  }
  if (!f.installed.includes(target)) {
    const have = f.installed.map((v) => `v${v}`);
    throw new CutoverError('E_NOT_INSTALLED', `v${target} is not installed under ${f.releasesDir}`, {
      hint: have.length ? `retained releases: ${have.join(', ')}` : 'no releases are retained; use `update --version`',
    });
  }
  if (target === f.current) {
    throw new CutoverError('E_USAGE', `v${target} is already current`, { hint: 'pick another release from `list`' });
  }
  const plain: RollbackPlan = {
    from: f.current,
    to: target,
    steps: [{ kind: 'check-retained', version: target, ...(f.force ? { force: true } : {}) }, ...activationSteps(f.current, target, f.previous, f.activation)],
  };
  const d = f.data;
  if (!d) return plain;
  const schema = d.target?.schema ?? (d.db ? 0 : null);
  const fits = d.db === null || schema === null || runsOn(schema, d.db);
  const saved = backupFor(d.backups, target);
  if (d.restore) {
    if (!d.configured) throw new CutoverError('E_USAGE', '--restore needs a [database] in the config', { hint: 'drop --restore' });
    if (!saved) {
      throw new CutoverError('E_ROLLBACK_SCHEMA', `there is no backup taken on v${target} to restore`, {
        hint: `roll back without --restore only if v${target} runs on the database as it is (--ignore-schema), or install a release that does`,
        details: { target, schema, database: d.db?.schema ?? null },
      });
    }
    return planRestoreSteps({ ...f, from: f.current, to: target, saved, safety: d.exists ? d.backup : null, db: d.db });
  }
  if (fits || d.ignoreSchema) return plain;
  throw new CutoverError(
    'E_ROLLBACK_SCHEMA',
    `v${target} runs on schema ${schema}, but the database is on schema ${d.db?.schema} (which v${target} cannot read: rollback_safe_schema is ${d.db?.rollbackSafe})`,
    {
      hint: saved
        ? `\`rollback --restore\` puts back backup ${saved.id} (taken on v${target}; what was written since is lost), or --ignore-schema switches the code only`
        : `no backup taken on v${target} exists; --ignore-schema switches the code only`,
      details: { target, schema, database: d.db?.schema ?? null, backup: saved?.id ?? null },
    },
  );
}

/**
 * Put a backup back with the units stopped: check it, stop the units (reverse order), keep a
 * backup of what it replaces (the undo puts that back), restore, switch (a rollback), start the
 * units in order, gate, and record the backup's schema.
 */
export function planRestoreSteps(f: {
  from: string | null;
  to: string | null;
  previous: string | null;
  activation: ActivationFacts;
  saved: BackupRecord;
  safety: { id: string; file: string } | null;
  db: SchemaLevel | null;
  record?: boolean;
}): RollbackPlan & { to: string } {
  const { units, health } = f.activation;
  const to = f.to ?? f.from;
  if (to === null) throw new CutoverError('E_NO_PREVIOUS', 'there is no release to run on the restored database', { hint: 'install one with `update`' });
  const steps: Step[] = [];
  if (f.to !== null && f.to !== f.from) steps.push({ kind: 'check-retained', version: f.to });
  steps.push({ kind: 'check-backup', id: f.saved.id });
  if (f.from !== null && units.length) steps.push({ kind: 'stop', units: [...units].reverse() });
  if (f.safety) {
    steps.push({
      kind: 'backup',
      id: f.safety.id,
      file: f.safety.file,
      version: f.from,
      schema: f.db?.schema ?? null,
      rollbackSafe: f.db?.rollbackSafe ?? null,
      reason: 'restore',
      compatible: false,
    });
  }
  steps.push({ kind: 'restore', id: f.saved.id });
  if (f.to !== null && f.to !== f.from) steps.push({ kind: 'switch', from: f.from, to: f.to, previous: f.previous });
  steps.push(...units.map((unit): Step => ({ kind: 'start', unit })));
  if (units.length && health) steps.push({ kind: 'gate', version: to });
  // What the backup holds is what the database now holds: a backup from before any schema leaves none recorded.
  if (f.record !== false) {
    steps.push({
      kind: 'record-schema',
      version: f.saved.version ?? to,
      schema: f.saved.schema,
      rollbackSafe: f.saved.schema === null ? null : (f.saved.rollbackSafe ?? f.saved.schema),
      via: 'restore',
    });
  }
  return { from: f.from, to, steps };
}

/**
 * Which releases to remove so that `keep` remain besides current. Never current, never previous
 * (rollback's target), which counts as one of the `keep` and stays even at keep 0; among the
 * rest the highest versions stay.
 */
export function planPrune(input: { installed: string[]; current: string | null; previous: string | null; keep: number }): string[] {
  const others = input.installed.filter((v) => v !== input.current).sort(semver.rcompare);
  const kept = new Set<string>();
  if (input.previous && others.includes(input.previous)) kept.add(input.previous);
  for (const v of others) {
    if (kept.size >= input.keep) break;
    kept.add(v);
  }
  return others.filter((v) => !kept.has(v));
}

export function planGc(input: {
  installed: string[];
  current: string | null;
  previous: string | null;
  keep: number;
  backups?: BackupRecord[];
  backupKeep?: number;
}): Step[] {
  const versions = planPrune(input);
  const steps: Step[] = versions.length ? [{ kind: 'prune', versions }] : [];
  if (input.backups && input.backupKeep !== undefined) {
    const left = input.installed.filter((v) => !versions.includes(v));
    const ids = planBackupPrune(input.backups, left, input.current, input.backupKeep);
    if (ids.length) steps.push({ kind: 'prune-backups', ids });
  }
  return steps;
}
