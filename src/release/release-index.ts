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
  /**
   * The release.json's `schema` and `upgrade_from`, repeated so that paths can be planned before
   * downloading. Untrusted: the signed release.json must say the same (compared as written).
   */
  schema?: number;
  upgradeFrom?: string;
}

/** An index entry cutover would not use, and why; the rest of the index still counts. */
export interface SkippedEntry {
  /** Position in the index's `releases` array. */
  index: number;
  /** The entry's `version` as the index wrote it, when it is a string (untrusted: quote it). */
  version: string | null;
  reason: string;
}

export interface ReleaseIndex {
  url: URL;
  releases: ReleaseEntry[];
  skipped: SkippedEntry[];
}

export type VersionCheck = { ok: true; version: string } | { ok: false; reason: string };

const MAX_VERSION_LENGTH = 256;

/**
 * "v1.4.0" and "1.4.0" are the same version (the tag form is "v1.4.0"); prereleases are fine.
 * Build metadata ("1.1.0+build.7") is refused: semver ignores it for ordering, so two builds
 * of one version could not be told apart, and the signed identity names the plain version.
 */
export function checkVersion(input: string): VersionCheck {
  const quoted = JSON.stringify(input);
  if (input.length > MAX_VERSION_LENGTH)
    return { ok: false, reason: `version ${JSON.stringify(input.slice(0, 40))}… is over ${MAX_VERSION_LENGTH} characters` };
  const bare = input.replace(/^v/i, '');
  const plus = bare.indexOf('+');
  if (plus >= 0 && semver.valid(bare) === bare.slice(0, plus)) {
    return {
      ok: false,
      reason: `version ${quoted} carries build metadata (${JSON.stringify(bare.slice(plus))}): cutover does not accept build metadata in versions`,
    };
  }
  // Canonical form only: no spaces, no "=", no leading zeros.
  if (semver.valid(bare) !== bare) return { ok: false, reason: `version ${quoted} is not a semantic version` };
  return { ok: true, version: bare };
}

/** The normalised version (no leading v), or undefined when `checkVersion` refuses it. */
function normalizeVersion(input: string): string | undefined {
  const c = checkVersion(input);
  return c.ok ? c.version : undefined;
}

function tagOf(version: string): string {
  return `v${version}`;
}

const MAX_SIZE = 64 * 1024 ** 3;

class EntryInvalid extends Error {}

/**
 * Validate the index JSON. A document that is not `{ "releases": [...] }` is E_INDEX_INVALID: the
 * server is serving garbage. One bad entry only costs that entry: it is left out and listed in
 * `skipped` with the reason, and every entry of a version listed twice is left out.
 */
export function parseReleaseIndex(json: unknown, url: URL): ReleaseIndex {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { releases?: unknown }).releases)) {
    throw new CutoverError('E_INDEX_INVALID', `release index ${url.href} is invalid: expected an object with a "releases" array`, {
      hint: 'ask the vendor to fix the index, or check source.index in the config',
    });
  }
  const items = (json as { releases: unknown[] }).releases;
  const parsed: Array<{ entry?: ReleaseEntry; version: string | null; normalized?: string; reason?: string }> = items.map((r) => {
    const raw = typeof r === 'object' && r !== null && typeof (r as { version?: unknown }).version === 'string' ? (r as { version: string }).version : null;
    const normalized = raw === null ? undefined : normalizeVersion(raw);
    try {
      return { entry: parseEntry(r, url), version: raw, ...(normalized ? { normalized } : {}) };
    } catch (e) {
      if (!(e instanceof EntryInvalid)) throw e;
      return { version: raw, ...(normalized ? { normalized } : {}), reason: e.message };
    }
  });
  const positions = new Map<string, number[]>();
  parsed.forEach((p, i) => {
    if (p.normalized) positions.set(p.normalized, [...(positions.get(p.normalized) ?? []), i]);
  });
  const releases: ReleaseEntry[] = [];
  const skipped: SkippedEntry[] = [];
  parsed.forEach((p, i) => {
    const twice = p.normalized ? (positions.get(p.normalized) ?? []) : [];
    if (p.entry && twice.length > 1) {
      skipped.push({ index: i, version: p.version, reason: `version ${p.normalized} is listed ${twice.length} times (entries ${twice.join(', ')})` });
    } else if (p.entry) {
      releases.push(p.entry);
    } else {
      skipped.push({ index: i, version: p.version, reason: p.reason ?? 'invalid' });
    }
  });
  return { url, releases, skipped };
}

/** One entry of the index, or EntryInvalid saying what is wrong with it. */
function parseEntry(r: unknown, url: URL): ReleaseEntry {
  const bad = (what: string): never => {
    throw new EntryInvalid(what);
  };
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return bad('the entry is not an object');
  const o = r as Record<string, unknown>;
  const field = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v === '') return bad(`"${k}" must be a non-empty string`);
    return v;
  };
  const checked = checkVersion(field('version'));
  if (!checked.ok) return bad(checked.reason);
  const version = checked.version;
  const sha256 = field('sha256').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha256)) return bad(`sha256 ${JSON.stringify(o.sha256)} is not 64 hex digits`);
  const size = o.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size > MAX_SIZE) {
    return bad(`size ${JSON.stringify(size) ?? 'missing'} is not a positive byte count (at most 64 GiB)`);
  }
  const unpacked = o.unpacked_size;
  if (unpacked !== undefined && (typeof unpacked !== 'number' || !Number.isSafeInteger(unpacked) || unpacked <= 0)) {
    return bad(`unpacked_size ${JSON.stringify(unpacked)} is not a positive byte count`);
  }
  const resolve = (k: string): URL => {
    const text = field(k);
    let u: URL;
    try {
      u = new URL(text, url);
    } catch {
      return bad(`${k} ${JSON.stringify(text)} is not a URL`);
    }
    if (u.protocol !== 'https:') return bad(`${k} ${JSON.stringify(text)} is not an https URL`);
    return u;
  };
  const schema = o.schema;
  if (schema !== undefined && (typeof schema !== 'number' || !Number.isSafeInteger(schema) || schema < 0)) {
    return bad(`schema ${JSON.stringify(schema)} is not a whole number from 0`);
  }
  const upgradeFrom = o.upgrade_from;
  if (upgradeFrom !== undefined && (typeof upgradeFrom !== 'string' || semver.validRange(upgradeFrom) === null)) {
    return bad(`upgrade_from ${JSON.stringify(upgradeFrom)} is not a semver range`);
  }
  const entry: ReleaseEntry = { version, artifact: resolve('artifact'), bundle: resolve('bundle'), sha256, size };
  if (typeof unpacked === 'number') entry.unpackedSize = unpacked;
  if (typeof schema === 'number') entry.schema = schema;
  if (typeof upgradeFrom === 'string') entry.upgradeFrom = upgradeFrom;
  return entry;
}

/** A skipped entry as one line for the operator. */
export function describeSkipped(s: SkippedEntry): string {
  const name = s.version === null ? `entry ${s.index}` : `entry ${s.index} (version ${JSON.stringify(s.version)})`;
  return `the release index lists an invalid ${name}, skipped: ${s.reason}`;
}

/** --version given: that release or E_VERSION_UNKNOWN. Not given: the highest stable version. */
export function resolveRelease(index: ReleaseIndex, wanted: string | undefined): ReleaseEntry {
  if (wanted !== undefined) {
    const checked = checkVersion(wanted);
    if (!checked.ok) {
      throw new CutoverError('E_USAGE', checked.reason, { hint: 'pass a version like v1.4.0' });
    }
    const v = checked.version;
    const hit = index.releases.find((r) => r.version === v);
    const broken = hit ? undefined : index.skipped.find((s) => s.version !== null && versionCore(s.version) === v);
    if (broken) {
      throw new CutoverError('E_VERSION_UNKNOWN', `${tagOf(v)} is listed in the index but its entry is invalid: ${broken.reason}`, {
        hint: 'tell the vendor',
        details: { version: v, index: broken.index, reason: broken.reason },
      });
    }
    if (!hit) {
      const known = latestFirst(index.releases)
        .slice(0, 5)
        .map((r) => tagOf(r.version));
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

/** The version an index entry means, build metadata and all dropped; undefined if it means none. */
function versionCore(raw: string): string | undefined {
  if (raw.length > MAX_VERSION_LENGTH) return undefined;
  return semver.valid(raw.replace(/^v/i, '')) ?? undefined;
}
