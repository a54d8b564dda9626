/**
 * `update` and `update --dry-run`: gather the facts, plan the steps (plan.ts, pure), then run
 * them with the executor (executor.ts), or, for a dry run, run only the steps that read.
 */
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { fetchJson, withDeadline } from '../download/download.ts';
import { fsError } from '../errors.ts';
import { layoutOf, releaseDir, type Layout } from '../layout/paths.ts';
import { diskUsage, listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { checkTrustedDir } from '../layout/trusted-path.ts';
import { describeSkipped, parseReleaseIndex, resolveRelease, type ReleaseEntry, type ReleaseIndex } from '../release/release-index.ts';
import { acquireLock } from '../state/lock.ts';
import { appendHistory, readState, type State } from '../state/state.ts';
import { expandIdentity } from '../verify/policy.ts';
import { engineContext } from './context.ts';
import { execute, executeDryRun, type Executed } from './executor.ts';
import { guardInstallRoot } from './guard.ts';
import { commitIndex, planUpdate, type DiskFacts, type UpdatePlan } from './plan.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';
import { describeStep } from './steps.ts';

export interface UpdateOptions {
  version?: string | undefined;
  dryRun: boolean;
  allowDowngrade: boolean;
  /** Switch the pointer only: no restarts, no health gate. */
  noRestart?: boolean;
  /** Update even when the current deployment fails its pre-flight health check. */
  force?: boolean;
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
  const layout = layoutOf(config.root);
  if (opts.dryRun) return dryRun(config, services, opts, layout, started);

  guardInstallRoot(config, layout, services.reporter, { create: true });
  const lock = acquireLock(layout.lock, 'update');
  try {
    const { state } = await recover(config, services, layout);
    const index = await fetchIndex(config, services, opts.signal);
    const release = resolveRelease(index, opts.version);
    const plan = await makePlan(config, layout, state, release, opts, true);
    if (plan.action === 'noop') {
      services.reporter.step(`${config.app} v${plan.to} is already current; nothing to do`);
      await appendHistory(layout, { at: new Date(services.clock.now()).toISOString(), op: 'update', from: plan.from, to: plan.to, result: 'noop' });
      return result(config, plan, false, null, services.clock.now() - started);
    }
    const ctx = engineContext(config, services, layout, state, opts.signal);
    const done = await execute(ctx, { op: 'update', from: plan.from, to: plan.to, steps: plan.steps, recovery: 'undo', commitAt: commitIndex(plan.steps) });
    services.reporter.step(`${config.app} is now on v${plan.to}${plan.from ? ` (was v${plan.from}; \`rollback\` returns to it)` : ''}`);
    return result(config, plan, false, done, services.clock.now() - started);
  } finally {
    lock.release();
  }
}

async function dryRun(config: Config, services: Services, opts: UpdateOptions, layout: Layout, started: number): Promise<UpdateResult> {
  const state = await readState(layout);
  const index = await fetchIndex(config, services, opts.signal);
  const release = resolveRelease(index, opts.version);
  const plan = await makePlan(config, layout, state, release, opts, false);
  if (plan.action === 'noop') {
    services.reporter.step(`${config.app} v${plan.to} is already current; an update would do nothing`);
    return result(config, plan, true, null, services.clock.now() - started);
  }
  // Another user's TMPDIR (sudo -E) could swap the sandbox for a link mid-download: refuse it.
  const tmp = path.resolve(tmpdir());
  checkTrustedDir(tmp, { what: 'TMPDIR', allowStickyFinal: true, fix: 'unset TMPDIR (run sudo without -E) or point it at a directory only root can write' });
  const sandbox = await mkdtemp(path.join(tmp, 'cutover-dry-run-'));
  try {
    const staging = path.join(sandbox, 'staging');
    await mkdir(staging, { mode: 0o700 });
    const ctx = engineContext(config, services, layout, state, opts.signal, { staging, tufCache: path.join(sandbox, 'tuf') });
    const done = await executeDryRun(ctx, {
      op: 'update',
      from: plan.from,
      to: plan.to,
      steps: plan.steps,
      recovery: 'undo',
      commitAt: commitIndex(plan.steps),
    });
    return result(config, plan, true, done, services.clock.now() - started);
  } finally {
    await rm(sandbox, { recursive: true, force: true });
  }
}

/** The facts the planner needs, measured here (I/O), so that planning itself is pure. */
async function makePlan(config: Config, layout: Layout, state: State, release: ReleaseEntry, opts: UpdateOptions, strict: boolean): Promise<UpdatePlan> {
  const current = await readCurrent(layout);
  const installed = await listInstalled(layout);
  const needsSpace = current !== release.version && !installed.includes(release.version);
  const disk = needsSpace ? await measureDisk(config, layout, installed, [current, state.previous, release.version], strict) : undefined;
  return planUpdate({
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
    activation: { units: opts.noRestart ? [] : config.service.units, health: config.health !== undefined },
    force: !!opts.force,
    ...(disk ? { disk } : {}),
  });
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

function result(config: Config, plan: UpdatePlan, dryRun: boolean, done: Executed | null, durationMs: number): UpdateResult {
  const staged = done?.scratch.staged;
  const verified = done?.scratch.verified;
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
    ...(verified ? { verified } : {}),
    ...(staged ? { download: staged.download, extracted: staged.extracted } : {}),
    durationMs,
  };
}
