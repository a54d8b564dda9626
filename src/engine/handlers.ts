/**
 * What each step kind does, and how it is undone. The executor calls these in plan order, and
 * the undos in reverse; each handler touches the machine only through the context's narrow
 * edges (layout paths, services) and records what it changed in `ctx.state`, which the
 * executor writes with the journal after every step.
 *
 * An undo may run after a crash, for a step that was interrupted half-way: each one checks what
 * is actually there before it acts.
 */
import { chmod, mkdtemp, rename, rm, statfs, symlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { extractStream, type RecordedEntry } from '../archive/extract.ts';
import { checkRelease, modifiedError, removeReleaseRecord, withRuntimeLink, writeReleaseRecord } from '../layout/release-record.ts';
import { formatDuration } from '../config/duration.ts';
import { fetchJson, sizeError, withDeadline } from '../download/download.ts';
import { CutoverError, fsError } from '../errors.ts';
import type { GateResult } from '../health/probe.ts';
import { fsyncDir, syncFilesystem } from '../layout/durable.ts';
import { releaseDir, type Layout } from '../layout/paths.ts';
import { isInstalled, removeRelease } from '../layout/releases.ts';
import { readCurrent, removeCurrent, switchCurrent } from '../layout/swap.ts';
import { emptyPrivateDir, ensurePrivateDir } from '../layout/trusted-path.ts';
import { checkManifest, readReleaseManifest } from '../release/manifest.ts';
import { formatBytes } from '../report.ts';
import type { Journal, State } from '../state/state.ts';
import { loadTrustMaterial } from '../verify/trust.ts';
import { verifyArtifact } from '../verify/verify.ts';
import type { Services } from './services.ts';
import type { Step } from './steps.ts';
import type { DatabaseDriver, RehearsalSupport, RunUser } from '../database/driver.ts';

const MAX_BUNDLE_BYTES = 1 << 20;

/** What the steps read and write, and the parts of the config they need (nothing more). */
export interface StepContext {
  app: string;
  layout: Layout;
  /** Dry run: staging and the TUF cache live in this private TMPDIR sandbox instead of .cutover/. */
  sandbox: { dir: string; staging: string; tufCache: string } | null;
  source: { timeoutMs: number };
  trust: { trustedRoot: string | undefined; requireTlog: boolean; requireTimestamp: boolean };
  disk: { maxRatio: number };
  /** Every configured unit, for the journalctl hint. */
  units: string[];
  /** The app's database, or null without [database]. */
  database: (DatabaseDriver & Partial<RehearsalSupport>) | null;
  backup: { dir: string; reserve: number };
  /** The account migrations run as (config `user`). */
  user: RunUser | undefined;
  migrate: { timeoutMs: number };
  /** Where a migration's output is shown live (stderr when it is a terminal). */
  live: NodeJS.WritableStream | undefined;
  services: Services;
  state: State;
  signal: AbortSignal;
  journal: Journal;
  /** Results passed from one step to a later one within this run (never needed after a crash). */
  scratch: Scratch;
}

export interface Scratch {
  bundle?: unknown;
  verified?: { identity: string; issuer: string; trust: string };
  staged?: { dir: string; download: { bytes: number; sha256: string }; extracted: { files: number; bytes: number }; record: RecordedEntry[] };
  /** Restart counters right after our restarts: a rise during the gate is a crash loop. */
  baseline: Map<string, number>;
  pruned: string[];
  pending?: string[];
  rehearsed?: { ms: number };
  restoredFrom?: string;
}

export interface Handler<S extends Step> {
  do(step: S, ctx: StepContext): Promise<void>;
  /** Returns what it did, for the operator ("rolled back to v1.3.0, healthy"), or nothing. */
  undo?(step: S, ctx: StepContext): Promise<string | undefined>;
}

export function journalHint(units: string[]): string {
  return `journalctl ${units.map((u) => `-u ${u}`).join(' ')} --since "-15min"`;
}

/** How long one unit may take to (re)start before cutover gives up on it. */
export function restartTimeout(ctx: StepContext): number {
  return Math.max(30_000, ctx.services.health?.timeoutMs ?? 90_000);
}

function signalName(signal: AbortSignal): string {
  const r = signal.reason as unknown;
  const name = r instanceof CutoverError ? r.details?.signal : undefined;
  return typeof name === 'string' ? name : 'a signal';
}

/**
 * The release being activated is not healthy: E_UNHEALTHY, and (unless the operator interrupted
 * the wait) it is marked bad so that the daemon never installs it again by itself.
 */
function unhealthy(ctx: StepContext, version: string, why: string, interrupted: boolean): CutoverError {
  // A restore that fails its gate says nothing about the release (it was running fine before): no mark.
  if (!interrupted && ctx.journal.op !== 'restore' && !ctx.state.bad.includes(version)) ctx.state.bad.push(version);
  return new CutoverError('E_UNHEALTHY', `v${version} was unhealthy (${why})`, {
    hint: `${interrupted ? 'the' : `v${version} is marked bad and will not be installed automatically; its`} logs: \`${journalHint(ctx.units)}\``,
    details: { bad: version, reason: why, interrupted },
  });
}

function targetOf(ctx: StepContext): string {
  return ctx.journal.to ?? '(none)';
}

const preflight: Handler<Extract<Step, { kind: 'preflight' }>> = {
  async do(step, ctx) {
    const health = ctx.services.health;
    if (!health) return;
    ctx.services.reporter.step(`Pre-flight: checking that v${step.version} is healthy at ${health.url}`);
    const gate = await health.gate(step.version, { signal: ctx.signal, quick: true });
    if (gate.healthy) return;
    const why = gate.last?.reason ?? 'no answer';
    if (step.force) {
      ctx.services.reporter.warn(`v${step.version} is not healthy (${why}); updating anyway (--force)`);
      return;
    }
    throw new CutoverError('E_PREFLIGHT', `the current release v${step.version} is not healthy before the update: ${why}`, {
      hint: 'fix the running deployment first (a new release would be blamed for it), or pass --force',
      details: { current: step.version, reason: why },
    });
  },
};

const fetchBundle: Handler<Extract<Step, { kind: 'fetch-bundle' }>> = {
  async do(step, ctx) {
    ctx.services.reporter.step(`Fetching the signature of v${step.version}`);
    ctx.scratch.bundle = await fetchJson(
      ctx.services.http,
      new URL(step.url),
      MAX_BUNDLE_BYTES,
      withDeadline(ctx.signal, ctx.source.timeoutMs),
      'signature bundle',
      'E_SIG_BUNDLE',
    );
  },
};

/**
 * The bundle is verified before a byte of the artifact is fetched: it must sign exactly the
 * digest the index names, for this identity and issuer. The stage step then accepts the
 * artifact only if its bytes hash to that digest.
 */
const verify: Handler<Extract<Step, { kind: 'verify' }>> = {
  async do(step, ctx) {
    const { reporter } = ctx.services;
    reporter.step('Verifying Sigstore signature');
    if (ctx.scratch.bundle === undefined) throw new Error('verify ran without a fetched bundle');
    const tufCache = ctx.sandbox?.tufCache ?? ctx.layout.tufCache;
    if (!ctx.sandbox) ensurePrivateDir(tufCache);
    const trust = await loadTrustMaterial({
      ...(ctx.trust.trustedRoot !== undefined ? { trustedRootPath: ctx.trust.trustedRoot } : {}),
      tufCachePath: tufCache,
      signal: ctx.signal,
    });
    if (trust.note) reporter.warn(trust.note);
    const verified = verifyArtifact({
      digest: Buffer.from(step.sha256, 'hex'),
      bundle: ctx.scratch.bundle,
      trust: trust.material,
      policy: { identity: step.identity, issuer: step.issuer, requireTlog: ctx.trust.requireTlog, requireTimestamp: ctx.trust.requireTimestamp },
    });
    ctx.scratch.verified = { identity: verified.identity, issuer: verified.issuer, trust: trust.source };
    reporter.step(`Signed by ${verified.identity} (issuer ${verified.issuer})`);
  },
};

const stage: Handler<Extract<Step, { kind: 'stage' }>> = {
  async do(step, ctx) {
    const { reporter, http } = ctx.services;
    if (!ctx.scratch.verified) throw new Error('stage ran before verify');
    const parent = ctx.sandbox?.staging ?? ctx.layout.staging;
    const { removedPlanted } = ensurePrivateDir(parent);
    if (removedPlanted) reporter.warn(`removed ${removedPlanted}, which someone else left where cutover keeps its own directory`);
    const url = new URL(step.url);
    reporter.step(`Downloading ${ctx.app} v${step.version} (${formatBytes(step.size)}) from ${url.host}, extracting as it arrives`);
    const deadline = withDeadline(ctx.signal, ctx.source.timeoutMs);
    // Each attempt streams into a fresh private directory; a failed one is removed before a retry.
    const staged = await http.get(url, deadline, async (res) => {
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > step.size) {
        res.body.destroy();
        throw sizeError(url, `server announces ${declared} bytes`, step.size);
      }
      const dir = await mkdtemp(path.join(parent, `v${step.version}-`)).catch((e: unknown) => {
        res.body.destroy();
        throw fsError('create a staging directory in', parent, e);
      });
      const hash = createHash('sha256');
      let bytes = 0;
      let lastReport = 0;
      let sourceError: unknown;
      // Our own iterator over the body: when the extractor stops early, the pipeline abandons
      // the generator below but the body stays readable, so the rest can still be hashed.
      const body = res.body[Symbol.asyncIterator]();
      const next = async (): Promise<Buffer | undefined> => {
        const r = await body.next();
        if (r.done) return undefined;
        const chunk = r.value;
        bytes += chunk.length;
        if (bytes > step.size) {
          res.body.destroy();
          throw sizeError(url, `more than ${step.size} bytes arrived`, step.size);
        }
        hash.update(chunk);
        if (bytes - lastReport > 1 << 20 || bytes === step.size) {
          lastReport = bytes;
          reporter.progress('download', bytes, step.size);
        }
        return chunk;
      };
      async function* source(): AsyncGenerator<Buffer> {
        for (;;) {
          let chunk: Buffer | undefined;
          try {
            chunk = await next();
          } catch (e) {
            sourceError = e;
            throw e;
          }
          if (chunk === undefined) return;
          yield chunk;
        }
      }
      const digestError = (): CutoverError =>
        new CutoverError('E_DIGEST_MISMATCH', `downloaded v${step.version} has sha256 ${hash.digest('hex')}, the signed digest is ${step.sha256}`, {
          hint: 'the file was tampered with or replaced; nothing was installed; tell the vendor',
        });
      try {
        const free =
          step.budget ??
          (await statfs(dir).then(
            (st) => st.bavail * st.bsize,
            () => undefined,
          ));
        let extracted;
        try {
          extracted = await extractStream(source(), { label: url.href, bytes: step.size }, dir, {
            signal: deadline,
            maxRatio: ctx.disk.maxRatio,
            ...(step.unpackedSize !== null ? { declaredUnpackedBytes: step.unpackedSize } : {}),
            ...(free !== undefined ? { budgetBytes: free } : {}),
            record: true,
          });
        } catch (e) {
          // A network failure mid-stream is the transfer's (retried by the client), not the archive's.
          if (sourceError !== undefined || deadline.aborted) throw sourceError ?? e;
          // The extractor refused what arrived. Were those the signed bytes? Hash the rest to
          // know: bytes that are not the signed ones are a tampered download (exit 3), whatever
          // they did to the extractor; the signed archive itself refused is the archive's (exit 5).
          while ((await next()) !== undefined);
          if (bytes !== step.size) throw sizeError(url, `only ${bytes} bytes arrived`, step.size);
          const hex = hash.copy().digest('hex');
          if (hex !== step.sha256) throw digestError();
          throw e;
        }
        // The pipeline read the source to its end: the digest and the size cover every byte sent.
        if (bytes !== step.size) throw sizeError(url, `only ${bytes} bytes arrived`, step.size);
        if (hash.copy().digest('hex') !== step.sha256) throw digestError();
        return {
          dir,
          download: { bytes, sha256: step.sha256 },
          extracted: { files: extracted.files, bytes: extracted.bytes },
          record: withRuntimeLink(extracted.record ?? []),
        };
      } catch (e) {
        await rm(dir, { recursive: true, force: true });
        throw e;
      }
    });
    ctx.scratch.staged = staged;
    try {
      checkManifest(await readReleaseManifest(staged.dir), { name: ctx.app, version: step.version });
      await linkRuntime(staged.dir);
    } catch (e) {
      await rm(staged.dir, { recursive: true, force: true });
      throw e;
    }
  },
  async undo(_step, ctx) {
    const dir = ctx.scratch.staged?.dir;
    if (dir) await rm(dir, { recursive: true, force: true });
    // After a crash: whatever any attempt left (the directory is cutover's own, never followed).
    if (!ctx.sandbox) emptyPrivateDir(ctx.layout.staging);
    delete ctx.scratch.staged;
    return undefined;
  },
};

/** A release's own `runtime` entry is replaced by a link to the operator's runtime/. */
async function linkRuntime(dir: string): Promise<void> {
  const link = path.join(dir, 'runtime');
  try {
    await rm(link, { recursive: true, force: true });
    await symlink('../../runtime', link);
  } catch (e) {
    throw fsError('link runtime/ into', dir, e);
  }
}

/**
 * A retained release is checked again before it goes live: its release.json must still be there,
 * readable, and name this app and version. Anything else means the tree under releases/ was
 * damaged or changed after install (E_RELEASE_DAMAGED), not that a vendor shipped a bad archive.
 */
async function checkRetained(layout: Layout, app: string, version: string): Promise<void> {
  const dir = releaseDir(layout, version);
  try {
    checkManifest(await readReleaseManifest(dir), { name: app, version });
  } catch (e) {
    if (!(e instanceof CutoverError) || e.code !== 'E_RELEASE_MANIFEST') throw e;
    throw new CutoverError('E_RELEASE_DAMAGED', `installed release v${version} is damaged: ${e.message}`, {
      hint: `roll back to another release from \`list\`, or remove ${dir} and reinstall it with \`update --version v${version}\``,
      cause: e,
      details: { version, dir, ...e.details },
    });
  }
}

const checkRetainedStep: Handler<Extract<Step, { kind: 'check-retained' }>> = {
  async do(step, ctx) {
    await checkRetained(ctx.layout, ctx.app, step.version);
    // The tree as it was verified and installed: a changed one is refused unless --force.
    const check = await checkRelease(ctx.layout, step.version);
    if (check.status === 'modified') {
      if (!step.force) throw modifiedError(check);
      ctx.services.reporter.warn(`${modifiedError(check).message}; going on (--force)`);
    }
  },
};

/** Remove releases; a failure to remove one is a warning. Returns the ones removed. */
async function removeReleases(ctx: Pick<StepContext, 'layout' | 'state' | 'services'>, versions: string[]): Promise<string[]> {
  const done: string[] = [];
  for (const v of versions) {
    ctx.services.reporter.step(`Removing old release v${v}`);
    try {
      if (await isInstalled(ctx.layout, v)) await removeRelease(ctx.layout, v);
      await removeReleaseRecord(ctx.layout, v);
      delete ctx.state.installed[v];
      done.push(v);
    } catch (e) {
      ctx.services.reporter.warn(`could not remove v${v}: ${(e as Error).message}`);
    }
  }
  return done;
}

const pruneBefore: Handler<Extract<Step, { kind: 'prune-before' }>> = {
  async do(step, ctx) {
    ctx.services.reporter.step(
      `Not enough space for v${targetOf(ctx)} (${formatBytes(step.need)} needed, ${formatBytes(step.available)} available after the ${formatBytes(step.reserve)} reserve): removing ${step.versions.map((v) => `v${v}`).join(', ')} first`,
    );
    const removed = await removeReleases(ctx, step.versions);
    ctx.scratch.pruned.push(...removed);
    const left = step.versions.filter((v) => !removed.includes(v));
    if (left.length) {
      throw new CutoverError('E_NO_SPACE', `could not remove ${left.map((v) => `v${v}`).join(', ')} to make room for v${targetOf(ctx)}`, {
        hint: 'free space on that filesystem by hand, then retry',
      });
    }
  },
};

const install: Handler<Extract<Step, { kind: 'install' }>> = {
  async do(step, ctx) {
    const staged = ctx.scratch.staged;
    if (!staged) throw new Error('install ran without a staged release');
    ctx.signal.throwIfAborted();
    ctx.services.reporter.step(`Flushing v${step.version} to disk`);
    // Staging was private (mkdtemp, 0700); a release is root's and readable by everyone, so the
    // app's own user can run it.
    await chmod(staged.dir, 0o755).catch((e: unknown) => {
      throw fsError('make readable', staged.dir, e);
    });
    syncFilesystem(staged.dir);
    const dest = releaseDir(ctx.layout, step.version);
    try {
      await rename(staged.dir, dest);
    } catch (e) {
      throw fsError('move the staged release to', dest, e);
    }
    await fsyncDir(ctx.layout.releases);
    await writeReleaseRecord(
      ctx.layout,
      {
        format: 1,
        version: step.version,
        sha256: staged.download.sha256,
        ...(ctx.scratch.verified ? { identity: ctx.scratch.verified.identity } : {}),
        entries: staged.record,
      },
      ctx.scratch.bundle,
    );
    ctx.state.installed[step.version] = {
      sha256: staged.download.sha256,
      installedAt: new Date(ctx.services.clock.now()).toISOString(),
      ...(ctx.scratch.verified ? { identity: ctx.scratch.verified.identity } : {}),
    };
  },
  async undo(step, ctx) {
    // The planner installs only a version that was not installed: removing it restores the tree.
    const there = await isInstalled(ctx.layout, step.version);
    if (there) await removeRelease(ctx.layout, step.version);
    await removeReleaseRecord(ctx.layout, step.version);
    delete ctx.state.installed[step.version];
    return there ? `removed releases/v${step.version}` : undefined;
  },
};

const switchStep: Handler<Extract<Step, { kind: 'switch' }>> = {
  async do(step, ctx) {
    ctx.signal.throwIfAborted();
    ctx.services.reporter.step(`Switching current: ${step.from ? `v${step.from}` : '(none)'} -> v${step.to}`);
    await switchCurrent(ctx.layout, step.to);
    ctx.state.previous = step.from;
  },
  /**
   * Back to the release it replaced: the pointer, `previous`, and the units that ran the new
   * code (each restarted again, in order, on the old one, then gated).
   */
  async undo(step, ctx) {
    const { reporter, serviceManager, health } = ctx.services;
    const touched = ctx.journal.steps
      .filter((r) => r.step.kind === 'restart' && (r.status === 'done' || r.status === 'running' || r.status === 'failed'))
      .map((r) => (r.step as Extract<Step, { kind: 'restart' }>).unit);
    const current = await readCurrent(ctx.layout);
    if (step.from === null) {
      if (current !== step.to) return undefined;
      const ran = ctx.journal.steps.some((r) => (r.step.kind === 'restart' || r.step.kind === 'start') && r.status !== 'pending' && r.status !== 'undone');
      if (!ran) {
        // Nothing ran the new code: no `current`, as before the first install.
        await removeCurrent(ctx.layout);
        return 'removed current (there was none before)';
      }
      throw new CutoverError('E_ROLLBACK_FAILED', `there is no previous release to return to; current stays on v${step.to}`, {
        details: { current: step.to },
      });
    }
    const started = ctx.services.clock.now();
    if (current !== step.from) {
      reporter.warn(`rolling back to v${step.from}`);
      reporter.step(`Switching current: v${step.to} -> v${step.from}`);
      await switchCurrent(ctx.layout, step.from);
    }
    ctx.state.previous = step.previous;
    if (!touched.length) return current !== step.from ? `switched current back to v${step.from}` : undefined;
    // In the order they were restarted (the journal's), each once.
    for (const unit of [...new Set(touched)]) {
      reporter.step(`Restarting ${unit}`);
      await serviceManager.resetFailed(unit);
      const r = await serviceManager.restart(unit, restartTimeout(ctx));
      if (!r.ok) throw notHealthyEither(step.from, `${unit} ${r.reason}`);
    }
    if (health) {
      const never = new AbortController().signal;
      const gate = await health.gate(step.from, { signal: never });
      if (!gate.healthy) throw notHealthyEither(step.from, gateReason(gate));
    }
    return `rolled back to v${step.from}${health ? ', which is healthy again' : ''} (in ${formatDuration(ctx.services.clock.now() - started)})`;
  },
};

function notHealthyEither(version: string, why: string): CutoverError {
  return new CutoverError('E_ROLLBACK_FAILED', `current was switched back to v${version}, but v${version} is not healthy either: ${why}`, {
    details: { current: version, rollbackReason: why },
  });
}

export function gateReason(gate: GateResult): string {
  return `health check failed: ${gate.last?.reason ?? 'no answer'} (after ${gate.probes} probes in ${formatDuration(gate.ms)})`;
}

/** Restart (or, after a stop, start) one unit on the release being activated and wait until it is up. */
export async function bringUp(unit: string, ctx: StepContext, verb: 'restart' | 'start'): Promise<void> {
  const { reporter, serviceManager } = ctx.services;
  const version = targetOf(ctx);
  if (ctx.signal.aborted) throw unhealthy(ctx, version, `interrupted by ${signalName(ctx.signal)}`, true);
  reporter.step(`${verb === 'restart' ? 'Restarting' : 'Starting'} ${unit}`);
  // Our own restarts must not eat the unit's start limit (systemd counts every start): a
  // quick update and rollback would otherwise look like a crash loop.
  await serviceManager.resetFailed(unit);
  const r = await serviceManager[verb](unit, restartTimeout(ctx));
  // A signal may also have reached systemctl (same process group): it is an interruption, not a verdict.
  if (ctx.signal.aborted) throw unhealthy(ctx, version, `interrupted by ${signalName(ctx.signal)}`, true);
  if (!r.ok) throw unhealthy(ctx, version, `${unit} ${r.reason}`, false);
  ctx.scratch.baseline.set(unit, r.state?.nRestarts ?? 0);
}

const restart: Handler<Extract<Step, { kind: 'restart' }>> = {
  do: (step, ctx) => bringUp(step.unit, ctx, 'restart'),
};

const gate: Handler<Extract<Step, { kind: 'gate' }>> = {
  async do(step, ctx) {
    const { reporter } = ctx.services;
    const health = ctx.services.health;
    if (!health) return;
    reporter.step(`Checking health at ${health.url} (${health.successes} good answers in a row within ${formatDuration(health.timeoutMs)})`);
    let crashed: string | undefined;
    const watch = new AbortController();
    let result: GateResult;
    try {
      result = await health.gate(step.version, {
        signal: AbortSignal.any([ctx.signal, watch.signal]),
        onProbe: (p, streak) => {
          if (!p.ok) reporter.step(`  health: ${p.reason}`);
          else if (streak === 1 || streak === health.successes) reporter.step(`  health: ok (${streak}/${health.successes})`);
          // A unit that crash-looped into its start limit will not come back: stop waiting.
          void unitTrouble(ctx).then((bad) => {
            if (bad && !crashed) {
              crashed = bad;
              watch.abort();
            }
          });
        },
      });
    } catch (e) {
      if (ctx.signal.aborted) throw unhealthy(ctx, step.version, `interrupted by ${signalName(ctx.signal)}`, true);
      if (crashed) throw unhealthy(ctx, step.version, crashed, false);
      throw e;
    }
    if (ctx.signal.aborted) throw unhealthy(ctx, step.version, `interrupted by ${signalName(ctx.signal)}`, true);
    // Healthy answers while a unit is being restarted by systemd behind our back do not count.
    crashed ??= result.healthy ? await unitTrouble(ctx) : undefined;
    if (!result.healthy || crashed) throw unhealthy(ctx, step.version, crashed ?? gateReason(result), false);
  },
};

/** A unit that failed, or that systemd had to restart since we started it: a crash (loop). */
async function unitTrouble(ctx: StepContext): Promise<string | undefined> {
  for (const unit of ctx.units) {
    const s = await ctx.services.serviceManager.state(unit).catch(() => undefined);
    if (!s) continue;
    if (s.activeState === 'failed') return `${unit} failed (result: ${s.result}${s.nRestarts ? `, ${s.nRestarts} restarts` : ''})`;
    const before = ctx.scratch.baseline.get(unit);
    if (before === undefined) ctx.scratch.baseline.set(unit, s.nRestarts);
    else if (s.nRestarts > before) return `${unit} crashed and was restarted by systemd ${s.nRestarts - before} time(s) during the health gate`;
    if (s.activeState !== 'active') return `${unit} is ${s.activeState}/${s.subState} during the health gate`;
  }
  return undefined;
}

const prune: Handler<Extract<Step, { kind: 'prune' }>> = {
  async do(step, ctx) {
    ctx.scratch.pruned.push(...(await removeReleases(ctx, step.versions)));
  },
};

export const RELEASE_HANDLERS = {
  preflight,
  'fetch-bundle': fetchBundle,
  verify,
  stage,
  'check-retained': checkRetainedStep,
  'prune-before': pruneBefore,
  install,
  switch: switchStep,
  restart,
  gate,
  prune,
};
