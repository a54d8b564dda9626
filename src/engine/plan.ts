import semver from 'semver';
import { CutoverError } from '../errors.ts';
import type { ReleaseEntry } from '../release/release-index.ts';

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
}

export interface PlanInput {
  app: string;
  root: string;
  current: string | null;
  previous: string | null;
  installed: string[];
  release: ReleaseEntry;
  keep: number;
  allowDowngrade: boolean;
}

export function planUpdate(input: PlanInput): UpdatePlan {
  const { current, release } = input;
  const base = {
    app: input.app,
    root: input.root,
    from: current,
    to: release.version,
    release,
  };
  if (current === release.version) {
    return { ...base, action: 'noop', downgrade: false, prune: [], rollbackTarget: input.previous };
  }
  const downgrade = current !== null && semver.valid(current) !== null && semver.lt(release.version, current);
  if (downgrade && !input.allowDowngrade) {
    throw new CutoverError('E_DOWNGRADE', `v${release.version} is older than the current v${current}`, {
      hint: `use \`rollback --to v${release.version}\` if it is retained, or pass --allow-downgrade`,
      details: { current, target: release.version },
    });
  }
  const installed = input.installed.includes(release.version);
  const after = installed ? input.installed : [...input.installed, release.version];
  return {
    ...base,
    action: installed ? 'switch' : 'install',
    downgrade,
    prune: planPrune({ installed: after, current: release.version, previous: current, keep: input.keep }),
    rollbackTarget: current,
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
