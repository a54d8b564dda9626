/**
 * The planner: from facts (config, state, what is installed, the index entry, the disk) to the
 * ordered steps of an operation. Pure: no I/O, no clock. Every refusal (downgrade, no previous,
 * not installed, no space) is decided here, before anything changes.
 */
import semver from 'semver';
import { CutoverError } from '../errors.ts';
import type { Reserve } from '../config/size.ts';
import type { ReleaseEntry } from '../release/release-index.ts';
import { planSpace, type SpacePlan } from './disk.ts';
import type { Step } from './steps.ts';

/** What restarting looks like for this operation: the units in order, and whether a gate follows. */
interface ActivationFacts {
  /** Units to restart, in order; empty with --no-restart or none configured. */
  units: string[];
  /** A [health] section exists: gate after the restarts (and pre-flight before an update). */
  health: boolean;
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
  steps: Step[];
}

export function planUpdate(f: UpdateFacts): UpdatePlan {
  const { current, release } = f;
  const base = { app: f.app, root: f.root, from: current, to: release.version, release, pruneBefore: [] as string[] };
  if (current === release.version) {
    return { ...base, action: 'noop', downgrade: false, prune: [], rollbackTarget: f.previous, steps: [] };
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
    steps.push({ kind: 'check-retained', version: release.version });
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
  steps.push(...activationSteps(current, release.version, f.previous, f.activation));
  if (prune.length) steps.push({ kind: 'prune', versions: prune });
  return {
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
  for (const kind of ['gate', 'restart', 'switch'] as const) {
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
  return {
    from: f.current,
    to: target,
    steps: [{ kind: 'check-retained', version: target }, ...activationSteps(f.current, target, f.previous, f.activation)],
  };
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

export function planGc(input: { installed: string[]; current: string | null; previous: string | null; keep: number }): Step[] {
  const versions = planPrune(input);
  return versions.length ? [{ kind: 'prune', versions }] : [];
}
