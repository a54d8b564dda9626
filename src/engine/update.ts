/**
 * `update` and `update --dry-run`: gather the facts, plan the steps (plan.ts, pure), then run
 * them with the executor (executor.ts), or, for a dry run, run only the steps that read.
 */
import { mkdir, mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { fetchJson, withDeadline } from '../download/download.ts';
import { CutoverError, fsError } from '../errors.ts';
import { databaseDriver } from '../database/backups.ts';
import { newBackupId } from '../database/retention.ts';
import { dataContract, readReleaseManifest, type ReleaseManifest } from '../release/manifest.ts';
import { layoutOf, releaseDir, type Layout } from '../layout/paths.ts';
import { diskUsage, listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { checkTrustedDir } from '../layout/trusted-path.ts';
import { describeSkipped, parseReleaseIndex, resolveRelease, type ReleaseEntry, type ReleaseIndex } from '../release/release-index.ts';
import { acquireLock } from '../state/lock.ts';
import { appendHistory, readState, type State } from '../state/state.ts';
import { expandIdentity } from '../verify/policy.ts';
import { engineContext } from './context.ts';
import { execute, executeDryRun, type Executed, type Operation } from './executor.ts';
import { guardInstallRoot } from './guard.ts';
import { commitIndex, planUpdate, type DataFacts, type DiskFacts, type UpdateFacts, type UpdatePlan } from './plan.ts';
import { recover } from './recover.ts';
import { upgradePath, upgradesFrom } from './upgrade-path.ts';
import { reserveBytes } from './disk.ts';
import type { Services } from './services.ts';
import { contractOf, NO_CONTRACT, schemaLevel } from './schema-facts.ts';
import { describeStep, type Step } from './steps.ts';
import type { StepContext } from './handlers.ts';

export interface UpdateOptions {
  version?: string | undefined;
  dryRun: boolean;
  allowDowngrade: boolean;
  /** Switch the pointer only: no restarts, no health gate. */
  noRestart?: boolean;
  /** Update even when the current deployment fails its pre-flight health check. */
  force?: boolean;
  /** Dry run: also run the migration against a scratch copy of the database. */
  rehearse?: boolean;
  /** false (the daemon with migrations = "manual"): refuse a release that changes the schema. */
  allowSchemaChange?: boolean;
  signal: AbortSignal;
}

export interface UpdateResult {
  op: 'update';
  dryRun: boolean;
  app: string;
  root: string;
  from: string | null;
  to: string;
  action: UpdatePlan['action'];
  downgrade: boolean;
  pruned: string[];
  rollbackTarget: string | null;
  /** The steps, in order: run (outcome done) or, in a dry run, only planned. */
  steps: Array<Record<string, unknown>>;
  /** The schema change (null: none), and the backup taken (or, in a dry run, that would be) with its estimated size. */
  schema: { from: number | null; to: number } | null;
  backup: { id: string; file: string; estimatedBytes: number } | null;
  pending?: string[];
  rehearsed?: { ms: number };
  /** Required upgrade stops: every hop, the target last (a dry run ran the first). */
  path?: string[];
  verified?: { identity: string; issuer: string; trust: string };
  download?: { bytes: number; sha256: string };
  extracted?: { files: number; bytes: number };
  durationMs: number;
}

const MAX_INDEX_BYTES = 8 << 20;

export async function fetchIndex(config: Pick<Config, 'source'>, services: Pick<Services, 'http' | 'reporter'>, signal: AbortSignal): Promise<ReleaseIndex> {
  services.reporter.step(`Fetching release index ${config.source.index.href}`);
  const json = await fetchJson(
    services.http,
    config.source.index,
    MAX_INDEX_BYTES,
    withDeadline(signal, config.source.timeoutMs),
    'release index',
    'E_INDEX_INVALID',
  );
  const index = parseReleaseIndex(json, config.source.index);
  for (const s of index.skipped) services.reporter.warn(`${describeSkipped(s)}; tell the vendor`);
  return index;
}

export async function runUpdate(config: Config, services: Services, opts: UpdateOptions): Promise<UpdateResult> {
  const started = services.clock.now();
  if (opts.rehearse && config.user && !canRunAsUser(config)) {
    throw new CutoverError('E_USAGE', `--rehearse runs the migration as ${config.user.name}, which needs root (or running as ${config.user.name})`, {
      hint: 'run it with sudo; the live database is still only read',
    });
  }
  const layout = layoutOf(config.root);
  if (opts.dryRun) return dryRun(config, services, opts, layout, started);

  guardInstallRoot(config, layout, services.reporter, { create: true });
  const lock = acquireLock(layout.lock, 'update');
  try {
    const { state } = await recover(config, services, layout);
    const index = await fetchIndex(config, services, opts.signal);
    const release = resolveRelease(index, opts.version);
    const from = await readCurrent(layout);
    const hops = upgradePath(index.releases, from, release, state.bad);
    if (hops.length > 1) services.reporter.step(describePath(release, from, hops));
    let last: UpdateResult | undefined;
    for (const [i, hop] of hops.entries()) {
      try {
        last = await updateOnce(config, services, opts, layout, state, hop, started);
      } catch (e) {
        throw hops.length > 1 ? hopFailed(e, i, hops, from) : e;
      }
    }
    return { ...last!, ...(hops.length > 1 ? { path: hops.map((h) => h.version) } : {}) };
  } finally {
    lock.release();
  }
}

/** One hop: a full update to `release`, journaled. */
async function updateOnce(
  config: Config,
  services: Services,
  opts: UpdateOptions,
  layout: Layout,
  state: State,
  release: ReleaseEntry,
  started: number,
): Promise<UpdateResult> {
  const { plan, facts } = await makePlan(config, layout, state, release, opts, true, services.clock.now());
  if (plan.action === 'noop') {
    services.reporter.step(`${config.app} v${plan.to} is already current; nothing to do`);
    await appendHistory(layout, { at: new Date(services.clock.now()).toISOString(), op: 'update', from: plan.from, to: plan.to, result: 'noop' });
    return result(config, plan, false, null, services.clock.now() - started, facts);
  }
  const ctx = engineContext(config, services, layout, state, opts.signal);
  const done = await execute(ctx, updateOperation(plan, facts, release));
  services.reporter.step(`${config.app} is now on v${plan.to}${plan.from ? ` (was v${plan.from}; \`rollback\` returns to it)` : ''}`);
  return result(config, plan, false, done, services.clock.now() - started, facts);
}

/** An update as the executor runs it: undone if killed before its commit point, re-planned once staged. */
function updateOperation(plan: UpdatePlan, facts: UpdateFacts, release: ReleaseEntry): Operation {
  return {
    op: 'update',
    from: plan.from,
    to: plan.to,
    steps: plan.steps,
    recovery: 'undo',
    commitAt: commitIndex(plan.steps),
    replan: replanner(facts, release),
  };
}

function describePath(target: ReleaseEntry, from: string | null, hops: ReleaseEntry[]): string {
  return `v${target.version} upgrades only from ${target.upgradeFrom}: the path is ${[from, ...hops.map((h) => h.version)].map((v) => `v${v}`).join(' -> ')}, each hop a full update`;
}

/** A hop failed (and was undone): say where the update stands and what is left. */
function hopFailed(e: unknown, i: number, hops: ReleaseEntry[], from: string | null): unknown {
  if (!(e instanceof CutoverError)) return e;
  const standing = i === 0 ? from : hops[i - 1]!.version;
  const left = hops.slice(i).map((h) => `v${h.version}`);
  return new CutoverError(
    e.code,
    `${e.message}; the update stopped on ${standing ? `v${standing}` : '(none)'} (hop ${i + 1} of ${hops.length} failed); left to do: ${left.join(' -> ')}`,
    {
      ...(e.hint !== undefined ? { hint: e.hint } : {}),
      cause: e,
      details: { ...e.details, standing, left: hops.slice(i).map((h) => h.version) },
    },
  );
}

async function dryRun(config: Config, services: Services, opts: UpdateOptions, layout: Layout, started: number): Promise<UpdateResult> {
  const state = await readState(layout);
  const index = await fetchIndex(config, services, opts.signal);
  const target = resolveRelease(index, opts.version);
  const from = await readCurrent(layout);
  const hops = upgradePath(index.releases, from, target, state.bad);
  // A path: the first hop is what would run first; the later ones depend on it.
  const release = hops[0]!;
  if (hops.length > 1) services.reporter.step(describePath(target, from, hops));
  const pathOf = hops.length > 1 ? { path: hops.map((h) => h.version) } : {};
  const { plan, facts } = await makePlan(config, layout, state, release, opts, false, services.clock.now());
  if (plan.action === 'noop') {
    services.reporter.step(`${config.app} v${plan.to} is already current; an update would do nothing`);
    return { ...result(config, plan, true, null, services.clock.now() - started, facts), ...pathOf };
  }
  // Another user's TMPDIR (sudo -E) could swap the sandbox for a link mid-download: refuse it.
  const tmp = path.resolve(tmpdir());
  checkTrustedDir(tmp, { what: 'TMPDIR', allowStickyFinal: true, fix: 'unset TMPDIR (run sudo without -E) or point it at a directory only root can write' });
  const sandbox = await mkdtemp(path.join(tmp, 'cutover-dry-run-'));
  try {
    const staging = path.join(sandbox, 'staging');
    await mkdir(staging, { mode: 0o700 });
    const ctx = engineContext(config, services, layout, state, opts.signal, { dir: sandbox, staging, tufCache: path.join(sandbox, 'tuf') });
    const done = await executeDryRun(ctx, updateOperation(plan, facts, release));
    return { ...result(config, plan, true, done, services.clock.now() - started, facts), ...pathOf };
  } finally {
    await rm(sandbox, { recursive: true, force: true });
  }
}

/**
 * Once `stage` has unpacked the signed release.json, the rest of the update is planned again from
 * it: it is authoritative, and the index may only repeat what it says.
 */
function replanner(facts: UpdateFacts, release: ReleaseEntry): (done: Step, ctx: StepContext) => Promise<Step[] | null> {
  return async (done, ctx) => {
    if (done.kind !== 'stage' || !ctx.scratch.staged || !facts.data) return null;
    const manifest = await readReleaseManifest(ctx.scratch.staged.dir);
    checkIndexAgrees(release, manifest);
    const target = dataContract(manifest);
    checkUpgradeFrom(release.version, target.upgradeFrom, facts.current);
    const plan = planUpdate({ ...facts, data: { ...facts.data, target } });
    return plan.steps.slice(plan.steps.findIndex((s) => s.kind === 'stage') + 1);
  };
}

/** The index may repeat `schema` and `upgrade_from` to plan ahead; the signed release.json must say the same, as written. */
function checkIndexAgrees(release: ReleaseEntry, manifest: ReleaseManifest): void {
  const pairs: Array<[string, unknown, unknown]> = [
    ['schema', release.schema, manifest.schema],
    ['upgrade_from', release.upgradeFrom, manifest.upgrade_from],
  ];
  for (const [key, index, signed] of pairs) {
    if (index === undefined || index === signed) continue;
    throw new CutoverError(
      'E_INDEX_MISMATCH',
      `the index says v${release.version} has ${key} ${JSON.stringify(index)}, its signed release.json says ${JSON.stringify(signed ?? null)}`,
      {
        hint: 'nothing was installed; tell the vendor (the index must repeat the signed values exactly)',
        details: { key, index, signed },
      },
    );
  }
}

/** A target whose `upgrade_from` excludes the current version is reached only through the stops it names. */
function checkUpgradeFrom(version: string, range: string | null, current: string | null): void {
  if (current === null || upgradesFrom(current, range)) return;
  throw new CutoverError('E_UPGRADE_PATH', `v${version} upgrades only from ${range}, and v${current} is current`, {
    hint: `update to a release in ${range} first (\`update --version vX\`), then to v${version}; nothing was installed`,
    details: { upgradeFrom: range, current },
  });
}

/** Free space where backups go (the nearest existing directory), and the reserve when that is the root's filesystem. */
async function backupSpace(config: Config): Promise<{ dir: string; free: number; reserve: number } | undefined> {
  let dir = config.backup.dir;
  let st = await stat(dir).catch(() => undefined);
  while (!st?.isDirectory()) {
    if (path.dirname(dir) === dir) return undefined;
    dir = path.dirname(dir);
    st = await stat(dir).catch(() => undefined);
  }
  const [fs, rootDev] = await Promise.all([
    statfs(dir),
    stat(config.root).then(
      (s) => s.dev,
      () => -1,
    ),
  ]);
  const reserve = st.dev === rootDev ? reserveBytes(config.disk.reserve, fs.blocks * fs.bsize) : 0;
  return { dir: config.backup.dir, free: fs.bavail * fs.bsize, reserve };
}

function canRunAsUser(config: Config): boolean {
  const uid = process.geteuid?.();
  return uid === 0 || (config.user?.uid !== undefined && config.user.uid === uid);
}

async function dataFacts(
  config: Config,
  layout: Layout,
  state: State,
  release: ReleaseEntry,
  current: string | null,
  retained: boolean,
  opts: UpdateOptions,
  now: number,
): Promise<DataFacts | undefined> {
  const target = retained
    ? ((await contractOf(layout, release.version)) ?? NO_CONTRACT)
    : { ...NO_CONTRACT, schema: release.schema ?? null, rollbackSafeSchema: release.schema ?? null, upgradeFrom: release.upgradeFrom ?? null };
  const currentContract = current ? await contractOf(layout, current) : null;
  const db = schemaLevel(state, currentContract);
  const driver = databaseDriver(config);
  const id = newBackupId(now, current, state.backups);
  return {
    target,
    db,
    currentSchema: current === null ? null : (currentContract?.schema ?? (db ? 0 : null)),
    configured: driver !== null,
    exists: driver ? await driver.exists() : false,
    when: config.backup.when,
    user: config.user?.name ?? null,
    backup: { id, file: `${id}${driver?.extension ?? ''}` },
    backups: state.backups,
    backupKeep: config.backup.keep,
    estimate: driver ? await driver.estimateBytes() : 0,
    ...(driver ? { backupSpace: await backupSpace(config) } : {}),
    // The pending list and the rehearsal run as `user`: root can switch to it, and so can that user itself.
    ...(opts.dryRun ? { dryRun: { pending: canRunAsUser(config), rehearse: !!opts.rehearse } } : {}),
    ...(opts.allowSchemaChange === false ? { manual: true } : {}),
  };
}

/** The facts the planner needs, measured here (I/O), so that planning itself is pure. */
async function makePlan(
  config: Config,
  layout: Layout,
  state: State,
  release: ReleaseEntry,
  opts: UpdateOptions,
  strict: boolean,
  now: number,
): Promise<{ plan: UpdatePlan; facts: UpdateFacts }> {
  const current = await readCurrent(layout);
  const installed = await listInstalled(layout);
  const retained = installed.includes(release.version);
  const needsSpace = current !== release.version && !retained;
  const disk = needsSpace ? await measureDisk(config, layout, installed, [current, state.previous, release.version], strict) : undefined;
  const data = current === release.version ? undefined : await dataFacts(config, layout, state, release, current, retained, opts, now);
  if (retained && data) checkUpgradeFrom(release.version, data.target.upgradeFrom, current);
  const facts: UpdateFacts = {
    app: config.app,
    root: config.root,
    current,
    previous: state.previous,
    installed,
    release,
    keep: config.keep,
    allowDowngrade: opts.allowDowngrade,
    identity: expandIdentity(config.trust.identity, release.version),
    issuer: config.trust.issuer,
    activation: {
      units: opts.noRestart ? [] : config.service.units,
      health: config.health !== undefined,
      skipped: !!opts.noRestart && config.service.units.length > 0,
    },
    force: !!opts.force,
    ...(disk ? { disk } : {}),
    ...(data ? { data } : {}),
  };
  return { plan: planUpdate(facts), facts };
}

/** Free space on the root's filesystem and what each removable release occupies. */
async function measureDisk(config: Config, layout: Layout, installed: string[], keep: Array<string | null>, strict: boolean): Promise<DiskFacts | undefined> {
  let st;
  try {
    st = await statfs(layout.root);
  } catch (e) {
    // A dry run before the first install has no root yet: space is then not planned.
    if (!strict) return undefined;
    throw fsError('measure free space on', layout.root, e);
  }
  const prunable = [];
  for (const v of installed) {
    if (keep.includes(v)) continue;
    prunable.push({ version: v, bytes: await diskUsage(releaseDir(layout, v)) });
  }
  return { free: st.bavail * st.bsize, total: st.blocks * st.bsize, reserve: config.disk.reserve, prunable };
}

function result(config: Config, plan: UpdatePlan, dryRun: boolean, done: Executed | null, durationMs: number, facts: UpdateFacts): UpdateResult {
  const staged = done?.scratch.staged;
  const verified = done?.scratch.verified;
  const steps = done ? done.records.map((r) => r.step) : plan.steps;
  const backupStep = steps.find((s): s is Extract<Step, { kind: 'backup' }> => s.kind === 'backup');
  const schemaStep = steps.find((s): s is Extract<Step, { kind: 'record-schema' }> => s.kind === 'record-schema');
  return {
    op: 'update',
    dryRun,
    app: config.app,
    root: config.root,
    from: plan.from,
    to: plan.to,
    action: plan.action,
    downgrade: plan.downgrade,
    pruned: dryRun || !done ? [...plan.pruneBefore, ...plan.prune] : done.scratch.pruned,
    rollbackTarget: plan.rollbackTarget,
    steps: done ? done.records.map(describeStep) : [],
    schema: schemaStep && schemaStep.schema !== null ? { from: facts.data?.db?.schema ?? null, to: schemaStep.schema } : null,
    backup: backupStep ? { id: backupStep.id, file: path.join(config.backup.dir, backupStep.file), estimatedBytes: facts.data?.estimate ?? 0 } : null,
    ...(done?.scratch.pending ? { pending: done.scratch.pending } : {}),
    ...(done?.scratch.rehearsed ? { rehearsed: done.scratch.rehearsed } : {}),
    ...(verified ? { verified } : {}),
    ...(staged ? { download: staged.download, extracted: staged.extracted } : {}),
    durationMs,
  };
}
