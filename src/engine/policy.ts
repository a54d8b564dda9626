import semver from 'semver';
import type { AutoPolicy } from '../config/config.ts';
import { inWindow, type MaintenanceWindow } from '../config/window.ts';
import { latestFirst, type ReleaseEntry } from '../release/release-index.ts';
import { upgradesFrom } from './upgrade-path.ts';

export interface Decision {
  /** install: do it now. hold: allowed, but outside the window. none: nothing to do automatically. */
  action: 'install' | 'hold' | 'none';
  /** The release the daemon would install. */
  target?: ReleaseEntry;
  /** The newest stable release, whether or not policy allows it. */
  newest?: ReleaseEntry;
  reason: string;
}

export interface DecideInput {
  current: string | null;
  releases: ReleaseEntry[];
  bad: string[];
  auto: AutoPolicy;
  window: MaintenanceWindow | undefined;
  now: Date;
  /** manual: never a release that changes the database's schema, nor a path of upgrade stops. */
  migrations?: 'manual' | 'auto';
  /** The database's schema as recorded (null: none). */
  schema?: number | null;
}

/** How far `to` is from `from`: the part of the version that changed. */
export function bump(from: string, to: string): 'major' | 'minor' | 'patch' {
  if (semver.major(to) !== semver.major(from)) return 'major';
  if (semver.minor(to) !== semver.minor(from)) return 'minor';
  return 'patch';
}

const RANK = { none: 0, patch: 1, minor: 2, major: 3 } as const;

/**
 * What the daemon may do by itself. Pure: never a downgrade, never a prerelease, never a release
 * marked bad, only within `auto`, only inside the window.
 */
export function decide(input: DecideInput): Decision {
  const stable = latestFirst(input.releases).filter((r) => semver.prerelease(r.version) === null);
  const newest = stable[0];
  const { current } = input;
  if (current === null) return { action: 'none', ...(newest ? { newest } : {}), reason: 'nothing is installed; the first install is manual' };
  const newer = stable.filter((r) => semver.gt(r.version, current));
  if (!newer.length) return { action: 'none', ...(newest ? { newest } : {}), reason: `v${current} is the newest release` };
  const allowed = newer.filter((r) => RANK[bump(current, r.version)] <= RANK[input.auto]);
  const unbad = allowed.filter((r) => !input.bad.includes(r.version));
  const manual = (r: ReleaseEntry): string | null => {
    if (input.migrations === 'auto') return null;
    if (r.schema !== undefined && r.schema !== (input.schema ?? null)) return `changes the database schema (${input.schema ?? 'none'} -> ${r.schema})`;
    if (!upgradesFrom(current, r.upgradeFrom)) return `needs upgrade stops (it upgrades only from ${r.upgradeFrom})`;
    return null;
  };
  const good = unbad.filter((r) => manual(r) === null);
  const target = good[0];
  const base = { ...(newest ? { newest } : {}) };
  const held = unbad[0];
  if (held && held !== target && manual(held)) {
    const why = `v${held.version} ${manual(held)}; daemon.migrations = "manual" leaves it to \`update\` by hand`;
    if (!target) return { action: 'none', ...base, reason: why };
  }
  if (!target) {
    const n = newer[0]!;
    if (allowed.length) return { action: 'none', ...base, reason: `v${allowed[0]!.version} is marked bad; waiting for a newer release` };
    return {
      action: 'none',
      ...base,
      reason: `v${n.version} is available (${bump(current, n.version)} update); daemon.auto = "${input.auto}" leaves it to a manual \`update\``,
    };
  }
  if (input.window && !inWindow(input.window, input.now)) {
    return { action: 'hold', target, ...base, reason: `v${target.version} will be installed in the maintenance window (${input.window.text})` };
  }
  return { action: 'install', target, ...base, reason: `v${target.version} is a ${bump(current, target.version)} update within daemon.auto = "${input.auto}"` };
}
