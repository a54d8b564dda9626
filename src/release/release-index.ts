import semver from 'semver';
import { CutoverError } from '../errors.ts';

export interface ReleaseEntry {
  /** Normalised semver, no leading v. */
  version: string;
  artifact: URL;
  bundle: URL;
  sha256: string;
  size: number;
  /** Bytes the archive unpacks to, when the index says (`unpacked_size`). */
  unpackedSize?: number;
}

export interface ReleaseIndex {
  url: URL;
  releases: ReleaseEntry[];
}

/** "v1.4.0" and "1.4.0" are the same version; the tag form is "v1.4.0". */
export function normalizeVersion(input: string): string | undefined {
  const v = input.trim().replace(/^v/i, '');
  const parsed = semver.valid(v);
  return parsed ?? undefined;
}

export function tagOf(version: string): string {
  return `v${version}`;
}

const MAX_SIZE = 64 * 1024 ** 3;

/** Validate the index JSON. Anything off is E_INDEX_INVALID: the server is serving garbage. */
export function parseReleaseIndex(json: unknown, url: URL): ReleaseIndex {
  const bad = (what: string): never => {
    throw new CutoverError('E_INDEX_INVALID', `release index ${url.href} is invalid: ${what}`, {
      hint: 'ask the vendor to fix the index, or check source.index in the config',
    });
  };
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { releases?: unknown }).releases)) {
    return bad('expected an object with a "releases" array');
  }
  const seen = new Set<string>();
  const releases = (json as { releases: unknown[] }).releases.map((r, i): ReleaseEntry => {
    if (typeof r !== 'object' || r === null) return bad(`releases[${i}] is not an object`);
    const o = r as Record<string, unknown>;
    const field = (k: string): string => {
      const v = o[k];
      if (typeof v !== 'string' || v === '') return bad(`releases[${i}].${k} must be a non-empty string`);
      return v;
    };
    const version = normalizeVersion(field('version'));
    if (!version) return bad(`releases[${i}].version "${String(o.version)}" is not a semantic version`);
    if (seen.has(version)) return bad(`version ${version} is listed twice`);
    seen.add(version);
    const sha256 = field('sha256').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(sha256)) return bad(`releases[${i}].sha256 must be 64 hex digits`);
    const size = o.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size > MAX_SIZE) {
      return bad(`releases[${i}].size must be a positive byte count`);
    }
    const resolve = (k: string): URL => {
      let u: URL;
      try {
        u = new URL(field(k), url);
      } catch {
        return bad(`releases[${i}].${k} is not a URL`);
      }
      if (u.protocol !== 'https:') return bad(`releases[${i}].${k} must be https`);
      return u;
    };
    return { version, artifact: resolve('artifact'), bundle: resolve('bundle'), sha256, size };
  });
  return { url, releases };
}

/** --version given: that release or E_VERSION_UNKNOWN. Not given: the highest stable version. */
export function resolveRelease(index: ReleaseIndex, wanted: string | undefined): ReleaseEntry {
  if (wanted !== undefined) {
    const v = normalizeVersion(wanted);
    if (!v) {
      throw new CutoverError('E_USAGE', `"${wanted}" is not a version`, { hint: 'pass a version like v1.4.0' });
    }
    const hit = index.releases.find((r) => r.version === v);
    if (!hit) {
      const known = latestFirst(index.releases).slice(0, 5).map((r) => tagOf(r.version));
      throw new CutoverError('E_VERSION_UNKNOWN', `${tagOf(v)} is not in the release index`, {
        hint: known.length ? `pick one of: ${known.join(', ')}` : 'the index lists no releases yet',
      });
    }
    return hit;
  }
  const stable = latestFirst(index.releases).filter((r) => semver.prerelease(r.version) === null);
  const newest = stable[0];
  if (!newest) {
    throw new CutoverError('E_VERSION_UNKNOWN', 'the release index lists no stable release', {
      hint: 'pass --version to install a prerelease explicitly',
    });
  }
  return newest;
}

export function latestFirst<T extends { version: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => semver.rcompare(a.version, b.version));
}
