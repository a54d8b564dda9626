/**
 * `cutover release index INDEX --add FILE | --remove VERSION`: the release index a vendor
 * publishes, kept newest first and rewritten atomically. An entry gets the archive's sha256,
 * size and unpacked size, and repeats its release.json's `schema` and `upgrade_from` (so that
 * operators can plan before downloading). A version never changes its bytes once listed.
 */
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import semver from 'semver';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { writeFileAtomic } from '../layout/durable.ts';
import { fileDigest } from '../layout/file-digest.ts';
import { archiveInfo } from './archive-info.ts';
import { checkVersion } from './release-index.ts';

type IndexEntry = Record<string, unknown> & { version: string; sha256: string };

async function readIndex(file: string): Promise<{ releases: IndexEntry[]; rest: Record<string, unknown> }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { releases: [], rest: {} };
    throw fsError('read', file, e);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CutoverError('E_INDEX_INVALID', `${file} is not JSON: ${(e as Error).message}`, { hint: 'fix or remove it' });
  }
  const releases = (doc as { releases?: unknown } | null)?.releases;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(releases) || releases.some((r) => typeof (r as { version?: unknown })?.version !== 'string')) {
    throw new CutoverError('E_INDEX_INVALID', `${file} is not a release index (an object with a "releases" array of entries with a "version")`, {
      hint: 'fix or remove it',
    });
  }
  const { releases: _r, ...rest } = doc as Record<string, unknown>;
  return { releases: releases as IndexEntry[], rest };
}

async function write(file: string, releases: IndexEntry[], rest: Record<string, unknown>): Promise<void> {
  const sorted = [...releases].sort((a, b) => semver.rcompare(bare(a.version), bare(b.version)));
  await writeFileAtomic(file, `${JSON.stringify({ ...rest, releases: sorted }, null, 2)}\n`, 0o644);
}

const bare = (v: string): string => v.replace(/^v/i, '');

/** Where an index entry points: relative to the index file, or under --base-url. */
function urlFor(indexFile: string, file: string, baseUrl: string | undefined): string {
  if (baseUrl !== undefined) return new URL(path.basename(file), baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).href;
  const rel = path
    .relative(path.dirname(path.resolve(indexFile)), path.resolve(file))
    .split(path.sep)
    .join('/');
  return rel.split('/').map(encodeURIComponent).join('/');
}

export interface IndexResult {
  index: string;
  action: 'added' | 'unchanged' | 'removed';
  version: string;
  entry?: IndexEntry;
}

export async function addToIndex(o: { index: string; file: string; baseUrl?: string | undefined }): Promise<IndexResult> {
  const bundle = `${o.file}.sigstore.json`;
  const st = await lstat(bundle).catch(() => undefined);
  if (!st?.isFile())
    throw new CutoverError('E_USAGE', `there is no bundle ${bundle} beside the archive`, { hint: 'sign it first: `cutover release sign FILE`' });
  const { manifest, unpackedSize } = await archiveInfo(o.file);
  const checked = checkVersion(typeof manifest.version === 'string' ? manifest.version : '');
  if (!checked.ok) throw new CutoverError('E_RELEASE_MANIFEST', `${o.file}'s release.json: ${checked.reason}`, { hint: 'pack it with `cutover release pack`' });
  const version = checked.version;
  const { sha256, bytes: size } = await fileDigest(o.file);
  const entry: IndexEntry = {
    version,
    artifact: urlFor(o.index, o.file, o.baseUrl),
    bundle: urlFor(o.index, bundle, o.baseUrl),
    sha256,
    size,
    unpacked_size: unpackedSize,
    ...(manifest.schema !== undefined ? { schema: manifest.schema } : {}),
    ...(manifest.upgrade_from !== undefined ? { upgrade_from: manifest.upgrade_from } : {}),
  };
  const { releases, rest } = await readIndex(o.index);
  const listed = releases.find((r) => bare(r.version) === version);
  if (listed && listed.sha256 !== sha256) {
    throw new CutoverError('E_INDEX_DIGEST_CHANGED', `${o.index} already lists v${version} with sha256 ${String(listed.sha256)}, and ${o.file} has ${sha256}`, {
      hint: 'a published release never changes: publish a new version (the index file is unchanged)',
      details: { version, listed: listed.sha256, file: sha256 },
    });
  }
  if (listed) return { index: o.index, action: 'unchanged', version, entry: listed };
  await write(o.index, [...releases, entry], rest);
  return { index: o.index, action: 'added', version, entry };
}

export async function removeFromIndex(o: { index: string; version: string }): Promise<IndexResult> {
  const { releases, rest } = await readIndex(o.index);
  const left = releases.filter((r) => bare(r.version) !== o.version);
  if (left.length === releases.length) {
    throw new CutoverError('E_VERSION_UNKNOWN', `${o.index} does not list v${o.version}`, { hint: 'nothing to remove' });
  }
  await write(o.index, left, rest);
  return { index: o.index, action: 'removed', version: o.version };
}
