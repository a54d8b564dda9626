/**
 * Required upgrade stops: a release whose `upgrade_from` excludes the current version is reached
 * through the releases it names. Pure: planned from the index (which repeats `upgrade_from`),
 * checked again against each hop's signed release.json when it is staged.
 */
import semver from 'semver';
import { CutoverError } from '../errors.ts';
import type { ReleaseEntry } from '../release/release-index.ts';

/** May an install of `from` upgrade directly to a release whose `upgrade_from` is `range` (none: any)? */
export function upgradesFrom(from: string, range: string | null | undefined): boolean {
  return range == null || semver.satisfies(from, range, { includePrerelease: true });
}

function reaches(from: string, to: ReleaseEntry): boolean {
  return upgradesFrom(from, to.upgradeFrom);
}

/**
 * The hops from `current` to `target`, the target last: before it, the newest release older than
 * the target that satisfies its range and that `current` may itself reach (recursively, so stops
 * chain; releases in between are skipped). Never a prerelease or a release marked bad as a stop.
 */
export function upgradePath(releases: ReleaseEntry[], current: string | null, target: ReleaseEntry, bad: string[] = []): ReleaseEntry[] {
  if (current === null || reaches(current, target)) return [target];
  const found = search(releases, current, target, bad, 0);
  if (found) return found;
  throw new CutoverError(
    'E_UPGRADE_PATH',
    `v${target.version} upgrades only from ${target.upgradeFrom}, and no release in the index leads there from v${current}`,
    {
      hint: `install a release in ${target.upgradeFrom} by hand first (\`update --version vX\`), or ask the vendor; nothing was installed`,
      details: { current, target: target.version, upgradeFrom: target.upgradeFrom },
    },
  );
}

function search(releases: ReleaseEntry[], current: string, target: ReleaseEntry, bad: string[], depth: number): ReleaseEntry[] | null {
  if (reaches(current, target)) return [target];
  if (depth > 20) return null;
  const stops = releases
    .filter(
      (r) =>
        semver.lt(r.version, target.version) &&
        semver.gt(r.version, current) &&
        semver.prerelease(r.version) === null &&
        !bad.includes(r.version) &&
        reaches(r.version, target),
    )
    .sort((a, b) => semver.rcompare(a.version, b.version));
  for (const stop of stops) {
    const before = search(releases, current, stop, bad, depth + 1);
    if (before) return [...before, target];
  }
  return null;
}
