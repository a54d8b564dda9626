/**
 * `release.json` at the root of every unpacked release: at least `{ "name", "version" }`.
 * Read from a tree that came out of an untrusted-until-checked archive, so it is opened
 * without following symlinks, without blocking on FIFOs, and with a size cap.
 */
import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { CutoverError, errnoCode } from '../errors.ts';

const MANIFEST_FILE = 'release.json';
const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface ReleaseManifest {
  name: string;
  version: string;
  [k: string]: unknown;
}

const HINT_BAD = 'the release archive is malformed; rebuild it with a release.json holding string "name" and "version"';

function bad(file: string, problem: string, cause?: unknown): CutoverError {
  return new CutoverError('E_RELEASE_MANIFEST', `${file} ${problem}`, {
    hint: HINT_BAD,
    details: { file },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Read and validate `dir/release.json`. Every problem is E_RELEASE_MANIFEST. */
export async function readReleaseManifest(dir: string): Promise<ReleaseManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') throw bad(file, 'is missing', e);
    if (code === 'ELOOP') throw bad(file, 'is a symlink, not a regular file', e);
    throw bad(file, `cannot be opened (${code ?? String(e)})`, e);
  }
  let text: string;
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw bad(file, 'is not a regular file');
    if (st.size > MAX_MANIFEST_BYTES) throw bad(file, `is ${st.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
    // Read one byte past the cap in case the file grew after fstat.
    const buf = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
    let len = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, len, buf.length - len, null);
      if (bytesRead === 0) break;
      len += bytesRead;
      if (len > MAX_MANIFEST_BYTES) throw bad(file, `is over the ${MAX_MANIFEST_BYTES}-byte limit`);
    }
    text = buf.toString('utf8', 0, len);
  } catch (e) {
    if (e instanceof CutoverError) throw e;
    throw bad(file, `cannot be read (${errnoCode(e) ?? String(e)})`, e);
  } finally {
    await handle.close();
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(file, `is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad(file, 'is not a JSON object');
  const m = json as Record<string, unknown>;
  for (const key of ['name', 'version'] as const) {
    if (typeof m[key] !== 'string' || m[key] === '') throw bad(file, `has no string "${key}"`);
  }
  return m as ReleaseManifest;
}

const bare = (v: string): string => v.trim().replace(/^v/i, '');

/** The unpacked release must be the one that was asked for: same name, same version (`v` ignored). */
export function checkManifest(m: { name: string; version: string }, expected: { name: string; version: string }): void {
  if (m.name !== expected.name) {
    throw new CutoverError('E_RELEASE_MANIFEST', `release.json names the app ${JSON.stringify(m.name)}, expected ${JSON.stringify(expected.name)}`, {
      hint: 'the artifact belongs to a different app; check source.index and the app name in the config',
      details: { name: m.name, expectedName: expected.name },
    });
  }
  if (bare(m.version) !== bare(expected.version)) {
    throw new CutoverError('E_RELEASE_MANIFEST', `release.json says version ${JSON.stringify(m.version)}, expected ${JSON.stringify(expected.version)}`, {
      hint: 'the release index points at the wrong artifact for this version; tell the vendor',
      details: { version: m.version, expectedVersion: expected.version },
    });
  }
}

/**
 * What a release says about its database (all optional): the schema level it runs on, the oldest
 * schema level releases built for can still run on this one's (`rollback_safe_schema`), how to
 * migrate and list pending migrations (argv run from the release directory), and which installed
 * versions may upgrade to it directly (`upgrade_from`, a semver range).
 */
export interface DataContract {
  schema: number | null;
  /** Defaults to `schema`. */
  rollbackSafeSchema: number | null;
  migrate: string[] | null;
  migratePending: string[] | null;
  upgradeFrom: string | null;
}

const MAX_SCHEMA = 1_000_000_000;

/** The release's data contract, checked; E_RELEASE_MANIFEST names the field when it is malformed. */
export function dataContract(m: ReleaseManifest, file = 'release.json'): DataContract {
  const int = (k: string): number | null => {
    const v = m[k];
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_SCHEMA)
      throw bad(file, `has "${k}" ${JSON.stringify(v)}, not a whole number from 0`);
    return v;
  };
  const argv = (k: string): string[] | null => {
    const v = m[k];
    if (v === undefined) return null;
    if (!Array.isArray(v) || v.length === 0 || v.some((a) => typeof a !== 'string' || a === '' || a.includes('\0')))
      throw bad(file, `has "${k}" ${JSON.stringify(v)}, not a non-empty list of strings (a command and its arguments)`);
    const prog = v[0] as string;
    // The program is the release's own: a path inside it, never the caller's PATH or another tree.
    if (path.isAbsolute(prog) || !prog.includes('/') || path.normalize(prog).split('/').includes('..'))
      throw bad(file, `has "${k}" starting with ${JSON.stringify(prog)}: the program must be a path inside the release such as "bin/migrate"`);
    return v as string[];
  };
  const schema = int('schema');
  const safe = int('rollback_safe_schema');
  if (safe !== null && schema === null) throw bad(file, 'has "rollback_safe_schema" without "schema"');
  if (safe !== null && schema !== null && safe > schema) throw bad(file, `has "rollback_safe_schema" ${safe} above its "schema" ${schema}`);
  const migrate = argv('migrate');
  const migratePending = argv('migrate_pending');
  if ((migrate || migratePending) && schema === null) throw bad(file, 'declares "migrate" or "migrate_pending" without "schema"');
  let upgradeFrom: string | null = null;
  if (m.upgrade_from !== undefined) {
    if (typeof m.upgrade_from !== 'string' || semver.validRange(m.upgrade_from) === null)
      throw bad(file, `has "upgrade_from" ${JSON.stringify(m.upgrade_from)}, not a semver range such as ">=1.4.0"`);
    upgradeFrom = m.upgrade_from;
  }
  return { schema, rollbackSafeSchema: safe ?? schema, migrate, migratePending, upgradeFrom };
}

/** Can a release built for schema `target` run on a database at `db` (brought there with `rollbackSafe`)? */
export function runsOn(target: number, db: { schema: number; rollbackSafe: number }): boolean {
  return target === db.schema || (target < db.schema && target >= db.rollbackSafe);
}
