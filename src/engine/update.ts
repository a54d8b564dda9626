import { chmod, mkdir, mkdtemp, rename, rm, statfs, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CutoverError, fsError } from '../errors.ts';
import { formatBytes } from '../report.ts';
import { extractRelease } from '../archive/extract.ts';
import type { Config } from '../config/config.ts';
import { downloadToFile, fetchJson } from '../download/download.ts';
import { fsyncDir, syncFilesystem } from '../layout/durable.ts';
import { layoutOf, releaseDir, type Layout } from '../layout/paths.ts';
import { diskUsage, listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { checkManifest, readReleaseManifest } from '../release/manifest.ts';
import { describeSkipped, parseReleaseIndex, resolveRelease, type ReleaseEntry, type ReleaseIndex } from '../release/release-index.ts';
import { acquireLock } from '../state/lock.ts';
import { appendHistory, readState, writeState, type State } from '../state/state.ts';
import { activate, rollBackUnhealthy } from './activate.ts';
import { preflight } from './preflight.ts';
import { settle, switchTo } from './switch.ts';
import { expandIdentity } from '../verify/policy.ts';
import { loadTrustMaterial } from '../verify/trust.ts';
import { verifyArtifact } from '../verify/verify.ts';
import { prune } from './gc.ts';
import { planSpace, type SpacePlan } from './disk.ts';
import { guardInstallRoot } from './guard.ts';
import { checkTrustedDir, ensurePrivateDir } from '../layout/trusted-path.ts';
import { planUpdate, type UpdatePlan } from './plan.ts';
import { recover } from './recover.ts';
import { checkRetained } from './rollback.ts';
import type { Services } from './services.ts';

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
  verified?: { identity: string; issuer: string; trust: string };
  download?: { bytes: number; sha256: string };
  extracted?: { files: number; bytes: number };
  durationMs: number;
}

const MAX_INDEX_BYTES = 8 << 20;
const MAX_BUNDLE_BYTES = 1 << 20;

export async function fetchIndex(config: Config, services: Services, signal: AbortSignal): Promise<ReleaseIndex> {
  services.reporter.step(`Fetching release index ${config.source.index.href}`);
  const json = await fetchJson(services.http, config.source.index, MAX_INDEX_BYTES, withDeadline(signal, config.source.timeoutMs), 'release index', 'E_INDEX_INVALID');
  const index = parseReleaseIndex(json, config.source.index);
  for (const s of index.skipped) services.reporter.warn(`${describeSkipped(s)}; tell the vendor`);
  return index;
}

/** `update` and `update --dry-run`: plan, then apply (or only print the plan). */
export async function runUpdate(config: Config, services: Services, opts: UpdateOptions): Promise<UpdateResult> {
  const started = Date.now();
  const layout = layoutOf(config.root);
  if (opts.dryRun) return dryRun(config, services, opts, layout, started);

  guardInstallRoot(config, layout, services.reporter, { create: true });
  const lock = acquireLock(layout.lock, 'update');
  try {
    const { state } = await recover(config, services, layout);
    const index = await fetchIndex(config, services, opts.signal);
    const release = resolveRelease(index, opts.version);
    const plan = await makePlan(config, layout, state, release, opts.allowDowngrade);
    const result = baseResult(config, plan, false);
    if (plan.action === 'noop') {
      services.reporter.step(`${config.app} v${plan.to} is already current; nothing to do`);
      await appendHistory(layout, { at: iso(), op: 'update', from: plan.from, to: plan.to, result: 'noop' });
      return { ...result, durationMs: Date.now() - started };
    }
    // An installed release goes live again only if it is still the release it was.
    if (plan.action === 'switch') await checkRetained(layout, config.app, plan.to);
    const activating = !opts.noRestart && config.service.units.length > 0;
    if (activating && plan.from !== null) await preflight(config, services, plan.from, { force: !!opts.force, signal: opts.signal });
    let prePruned: string[] = [];
    try {
      if (plan.action === 'install') {
        const space = await makeRoom(config, services, layout, state, plan);
        prePruned = space.prune;
        const staged = await stageRelease(config, services, layout, layout.downloads, layout.staging, release, opts.signal, layout.tufCache, space.budget);
        Object.assign(result, staged.facts);
        opts.signal.throwIfAborted();
        services.reporter.step(`Flushing v${release.version} to disk`);
        await installStaged(layout, staged.dir, release.version);
        state.installed[release.version] = {
          sha256: release.sha256,
          installedAt: iso(),
          identity: staged.facts.verified.identity,
        };
      }
      opts.signal.throwIfAborted();
      const previousBefore = state.previous;
      await switchTo(layout, state, plan.from, plan.to, 'update', services, { activating });
      if (activating) {
        // A signal stops the waiting (restarts, health gate) and rolls back instead.
        let outcome;
        try {
          outcome = await activate(config, services, plan.to, opts.signal);
        } catch (e) {
          outcome = { ok: false, reason: opts.signal.aborted ? 'interrupted' : `activation failed: ${(e as Error).message}` };
        }
        if (!outcome.ok || opts.signal.aborted) {
          const interrupted = opts.signal.aborted;
          const why = interrupted ? `interrupted by ${signalName(opts.signal)}` : outcome.reason;
          await rollBackUnhealthy(config, services, layout, state, plan.to, plan.from, why, previousBefore, { markBad: !interrupted });
        }
        await settle(layout, state);
      }
      if (state.bad.includes(plan.to)) {
        state.bad = state.bad.filter((v) => v !== plan.to);
        await writeState(layout, state);
      }
      const pruned = [...prePruned, ...(await prune(layout, state, plan.prune, services))];
      await appendHistory(layout, {
        at: iso(),
        op: 'update',
        from: plan.from,
        to: plan.to,
        result: 'ok',
        durationMs: Date.now() - started,
        pruned,
      });
      services.reporter.step(`${config.app} is now on v${plan.to}${plan.from ? ` (was v${plan.from}; \`rollback\` returns to it)` : ''}`);
      return { ...result, pruned, durationMs: Date.now() - started };
    } catch (e) {
      await appendHistory(layout, {
        at: iso(),
        op: 'update',
        from: plan.from,
        to: plan.to,
        result: 'failed',
        code: e instanceof CutoverError ? e.code : 'E_INTERNAL',
        message: (e as Error).message,
      }).catch(() => {});
      throw e;
    } finally {
      await rm(layout.downloads, { recursive: true, force: true }).catch(() => {});
      await rm(layout.staging, { recursive: true, force: true }).catch(() => {});
    }
  } finally {
    lock.release();
  }
}

async function dryRun(config: Config, services: Services, opts: UpdateOptions, layout: Layout, started: number): Promise<UpdateResult> {
  const state = await readState(layout);
  const index = await fetchIndex(config, services, opts.signal);
  const release = resolveRelease(index, opts.version);
  const plan = await makePlan(config, layout, state, release, opts.allowDowngrade);
  const result = baseResult(config, plan, true);
  if (plan.action === 'noop') {
    services.reporter.step(`${config.app} v${plan.to} is already current; an update would do nothing`);
    return { ...result, durationMs: Date.now() - started };
  }
  // Another user's TMPDIR (sudo -E) could swap the sandbox for a link mid-download: refuse it.
  const tmp = path.resolve(tmpdir());
  checkTrustedDir(tmp, { what: 'TMPDIR', allowStickyFinal: true, fix: 'unset TMPDIR (run sudo without -E) or point it at a directory only root can write' });
  const sandbox = await mkdtemp(path.join(tmp, 'cutover-dry-run-'));
  try {
    const staging = path.join(sandbox, 'staging');
    await mkdir(staging, { mode: 0o700 });
    const staged = await stageRelease(config, services, layout, sandbox, staging, release, opts.signal, path.join(sandbox, 'tuf'));
    Object.assign(result, staged.facts);
  } finally {
    await rm(sandbox, { recursive: true, force: true });
  }
  return { ...result, durationMs: Date.now() - started };
}

/**
 * Before staging: will the download and the unpacked release fit beside what is kept, leaving
 * the reserve free? If only pruning makes it fit, prune first (oldest first, never current or
 * previous) and say so; if nothing would, refuse with the arithmetic and prune nothing.
 */
async function makeRoom(config: Config, services: Services, layout: Layout, state: State, plan: UpdatePlan): Promise<SpacePlan> {
  const st = await statfs(layout.root).catch((e: unknown) => {
    throw fsError('measure free space on', layout.root, e);
  });
  const installed = await listInstalled(layout);
  const prunable = [];
  for (const v of installed) {
    if (v === plan.from || v === state.previous || v === plan.to) continue;
    prunable.push({ version: v, bytes: await diskUsage(releaseDir(layout, v)) });
  }
  const space = planSpace({
    version: plan.to,
    root: layout.root,
    free: st.bavail * st.bsize,
    total: st.blocks * st.bsize,
    reserve: config.disk.reserve,
    download: plan.release.size,
    unpacked: plan.release.unpackedSize,
    prunable,
    prunedAnyway: plan.prune,
  });
  if (space.prune.length) {
    services.reporter.step(
      `Not enough space for v${plan.to} (${formatBytes(space.need)} needed, ${formatBytes(space.available)} available after the ${formatBytes(space.reserve)} reserve): removing ${space.prune.map((v) => `v${v}`).join(', ')} first`,
    );
    const removed = await prune(layout, state, space.prune, services);
    if (removed.length !== space.prune.length) {
      throw new CutoverError('E_NO_SPACE', `could not remove ${space.prune.filter((v) => !removed.includes(v)).map((v) => `v${v}`).join(', ')} to make room for v${plan.to}`, {
        hint: 'free space on that filesystem by hand, then retry',
      });
    }
    plan.prune = plan.prune.filter((v) => !removed.includes(v));
  }
  return space;
}

async function makePlan(
  config: Config,
  layout: Layout,
  state: State,
  release: ReleaseEntry,
  allowDowngrade: boolean,
): Promise<UpdatePlan> {
  return planUpdate({
    app: config.app,
    root: config.root,
    current: await readCurrent(layout),
    previous: state.previous,
    installed: await listInstalled(layout),
    release,
    keep: config.keep,
    allowDowngrade,
  });
}

function baseResult(config: Config, plan: UpdatePlan, dryRun: boolean): UpdateResult {
  return {
    op: 'update',
    dryRun,
    app: config.app,
    root: config.root,
    from: plan.from,
    to: plan.to,
    action: plan.action,
    downgrade: plan.downgrade,
    pruned: plan.prune,
    rollbackTarget: plan.rollbackTarget,
    durationMs: 0,
  };
}

interface Staged {
  dir: string;
  facts: {
    verified: { identity: string; issuer: string; trust: string };
    download: { bytes: number; sha256: string };
    extracted: { files: number; bytes: number };
  };
}

/**
 * Download, verify, extract and check a release into a fresh private directory under
 * `stagingParent`. Nothing here touches `current`, releases/ or runtime/.
 */
async function stageRelease(
  config: Config,
  services: Services,
  layout: Layout,
  downloadDir: string,
  stagingParent: string,
  release: ReleaseEntry,
  signal: AbortSignal,
  tufCache = layout.tufCache,
  /** Bytes extraction may write; undefined: what the filesystem has free now, less the download. */
  budget?: number,
): Promise<Staged> {
  const { reporter } = services;
  for (const dir of [downloadDir, stagingParent]) {
    const { removedPlanted } = ensurePrivateDir(dir);
    if (removedPlanted) reporter.warn(`removed ${removedPlanted}, which someone else left where cutover keeps its own directory`);
  }
  await checkFreeSpace(downloadDir, release.size);

  const deadline = withDeadline(signal, config.source.timeoutMs);
  reporter.step(`Downloading ${config.app} v${release.version} (${formatBytes(release.size)}) from ${release.artifact.host}`);
  const bundleJson = await fetchJson(services.http, release.bundle, MAX_BUNDLE_BYTES, deadline, 'signature bundle', 'E_SIG_BUNDLE');
  const archive = path.join(downloadDir, `${config.app}-${release.version}.tar.gz`);
  const dl = await downloadToFile(services.http, release.artifact, archive, {
    size: release.size,
    signal: deadline,
    onProgress: (done, total) => reporter.progress('download', done, total),
  });
  const hex = dl.sha256.toString('hex');
  if (hex !== release.sha256) {
    throw new CutoverError('E_DIGEST_MISMATCH', `downloaded v${release.version} has sha256 ${hex}, the index says ${release.sha256}`, {
      hint: 'the file was tampered with or replaced; do not install it, tell the vendor',
    });
  }

  reporter.step('Verifying Sigstore signature');
  if (tufCache === layout.tufCache) ensurePrivateDir(tufCache);
  const trust = await loadTrustMaterial({
    ...(config.trust.trustedRoot !== undefined ? { trustedRootPath: config.trust.trustedRoot } : {}),
    tufCachePath: tufCache,
    signal,
  });
  if (trust.note) reporter.warn(trust.note);
  const policy = {
    identity: expandIdentity(config.trust.identity, release.version),
    issuer: config.trust.issuer,
    requireTlog: config.trust.requireTlog,
    requireTimestamp: config.trust.requireTimestamp,
  };
  const verified = verifyArtifact({ digest: dl.sha256, bundle: bundleJson, trust: trust.material, policy });
  reporter.step(`Signed by ${verified.identity} (issuer ${verified.issuer})`);

  reporter.step('Extracting into staging');
  const dir = await mkdtemp(path.join(stagingParent, `v${release.version}-`));
  // The budget: what planning left after the download, or (dry-run) what the sandbox has free now.
  const free = budget ?? (await statfs(dir).then((st) => st.bavail * st.bsize, () => undefined));
  const extracted = await extractRelease(archive, dir, {
    signal,
    maxRatio: config.disk.maxRatio,
    ...(release.unpackedSize !== undefined ? { declaredUnpackedBytes: release.unpackedSize } : {}),
    ...(free !== undefined ? { budgetBytes: free } : {}),
  });
  await rm(archive, { force: true });
  const manifest = await readReleaseManifest(dir);
  checkManifest(manifest, { name: config.app, version: release.version });
  await linkRuntime(dir);
  return {
    dir,
    facts: {
      verified: { identity: verified.identity, issuer: verified.issuer, trust: trust.source },
      download: { bytes: dl.bytes, sha256: hex },
      extracted: { files: extracted.files, bytes: extracted.bytes },
    },
  };
}

/** A release's own `runtime` entry is replaced by a link to the operator's runtime/. */
async function linkRuntime(dir: string): Promise<void> {
  const link = path.join(dir, 'runtime');
  await rm(link, { recursive: true, force: true });
  await symlink('../../runtime', link);
}

/** Make the staged tree durable, then rename it into releases/ as one complete directory. */
async function installStaged(layout: Layout, staged: string, version: string): Promise<void> {
  // Staging was private (mkdtemp, 0700); a release is root's and readable by everyone, so the
  // app's own user can run it.
  await chmod(staged, 0o755);
  syncFilesystem(staged);
  const dest = releaseDir(layout, version);
  try {
    await rename(staged, dest);
  } catch (e) {
    throw fsError('move the staged release to', dest, e);
  }
  await fsyncDir(layout.releases);
}

async function checkFreeSpace(dir: string, need: number): Promise<void> {
  const st = await statfs(dir).catch(() => null);
  if (!st) return;
  const free = st.bavail * st.bsize;
  if (free < need) {
    throw new CutoverError('E_NO_SPACE', `${dir} has ${formatBytes(free)} free, the download alone needs ${formatBytes(need)}`, {
      hint: 'free disk space (`gc` removes old releases) and retry',
    });
  }
}

export function withDeadline(signal: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)]);
}

function signalName(signal: AbortSignal): string {
  const r = signal.reason as unknown;
  const name = r instanceof CutoverError ? r.details?.signal : undefined;
  return typeof name === 'string' ? name : 'a signal';
}

function iso(): string {
  return new Date().toISOString();
}
