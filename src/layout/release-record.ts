/**
 * What was verified and installed, kept beside the state: `.cutover/releases/vX.json` (every
 * entry's path, type, mode, size and sha256 as extracted, with the archive's digest and the
 * signing identity) and `.cutover/releases/vX.sigstore.json` (the bundle it was verified with).
 * `verify` compares releases/vX with it; rollback checks its target against it first.
 */
import { lstat, mkdir, readdir, readFile, readlink, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RecordedEntry } from '../archive/extract.ts';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { writeFileAtomic } from './durable.ts';
import { fileDigest } from './file-digest.ts';
import { releaseDir, type Layout } from './paths.ts';

export interface ReleaseRecord {
  format: 1;
  version: string;
  /** The archive's sha256 (what the signature covers). */
  sha256: string;
  identity?: string;
  entries: RecordedEntry[];
}

const recordsDir = (layout: Layout): string => path.join(layout.state, 'releases');
const recordFile = (layout: Layout, version: string): string => path.join(recordsDir(layout), `v${version}.json`);

export async function writeReleaseRecord(layout: Layout, rec: ReleaseRecord, bundle: unknown): Promise<void> {
  await mkdir(recordsDir(layout), { recursive: true, mode: 0o755 }).catch((e: unknown) => {
    throw fsError('create', recordsDir(layout), e);
  });
  if (bundle !== undefined) await writeFileAtomic(path.join(recordsDir(layout), `v${rec.version}.sigstore.json`), `${JSON.stringify(bundle)}\n`, 0o644);
  await writeFileAtomic(recordFile(layout, rec.version), `${JSON.stringify(rec)}\n`, 0o644);
}

export async function removeReleaseRecord(layout: Layout, version: string): Promise<void> {
  await rm(recordFile(layout, version), { force: true });
  await rm(path.join(recordsDir(layout), `v${version}.sigstore.json`), { force: true });
}

async function readReleaseRecord(layout: Layout, version: string): Promise<ReleaseRecord | null> {
  let text: string;
  try {
    text = await readFile(recordFile(layout, version), 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw fsError('read', recordFile(layout, version), e);
  }
  return JSON.parse(text) as ReleaseRecord;
}

/** The installed tree's `runtime` is cutover's own link, not the archive's entry. */
export function withRuntimeLink(entries: RecordedEntry[]): RecordedEntry[] {
  const kept = entries.filter((e) => e.path !== 'runtime' && !e.path.startsWith('runtime/'));
  return [...kept, { path: 'runtime', type: 'symlink' as const, mode: 0o777, target: '../../runtime' }].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
}

interface Finding {
  path: string;
  problem: 'content' | 'type' | 'mode' | 'target' | 'missing' | 'added';
  detail: string;
}

export interface ReleaseCheck {
  version: string;
  status: 'ok' | 'modified' | 'unrecorded';
  findings: Finding[];
  entries: number;
}

/** Compare releases/vX with what was installed. Reads only. */
export async function checkRelease(layout: Layout, version: string): Promise<ReleaseCheck> {
  const rec = await readReleaseRecord(layout, version);
  if (!rec) return { version, status: 'unrecorded', findings: [], entries: 0 };
  const root = releaseDir(layout, version);
  const want = new Map(rec.entries.map((e) => [e.path, e]));
  const findings: Finding[] = [];
  const seen = new Set<string>();
  /** Files whose size matches: hashed after the walk, several at a time (the disk, not the CPU, is the limit). */
  const hashes: Array<{ path: string; sha256: string }> = [];
  const walk = async (rel: string): Promise<void> => {
    const dir = rel ? path.join(root, rel) : root;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (rel === '')
        throw new CutoverError('E_NOT_INSTALLED', `v${version} is not installed (${root}: ${errnoCode(e) ?? String(e)})`, {
          hint: 'pick a release from `list`',
        });
      return;
    }
    for (const name of names.sort()) {
      const p = rel ? `${rel}/${name}` : name;
      seen.add(p);
      const st = await lstat(path.join(root, p));
      const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      const w = want.get(p);
      if (!w) {
        findings.push({ path: p, problem: 'added', detail: `a ${type} that was not installed` });
        if (type === 'dir') await walk(p);
        continue;
      }
      if (w.type !== type) {
        findings.push({ path: p, problem: 'type', detail: `is a ${type}, was installed as a ${w.type}` });
        continue;
      }
      if (type === 'symlink') {
        const target = await readlink(path.join(root, p));
        if (target !== w.target) findings.push({ path: p, problem: 'target', detail: `points at ${JSON.stringify(target)}, was ${JSON.stringify(w.target)}` });
        continue;
      }
      if ((st.mode & 0o7777) !== w.mode)
        findings.push({ path: p, problem: 'mode', detail: `mode 0${(st.mode & 0o7777).toString(8)}, was 0${w.mode.toString(8)}` });
      if (type === 'dir') {
        await walk(p);
        continue;
      }
      if (st.size !== w.size) findings.push({ path: p, problem: 'content', detail: `${st.size} bytes, was ${w.size}` });
      else hashes.push({ path: p, sha256: w.sha256 ?? '' });
    }
  };
  await walk('');
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < hashes.length) {
      const h = hashes[next++]!;
      if ((await fileDigest(path.join(root, h.path))).sha256 !== h.sha256)
        findings.push({ path: h.path, problem: 'content', detail: 'content differs (sha256)' });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  for (const e of rec.entries) if (!seen.has(e.path)) findings.push({ path: e.path, problem: 'missing', detail: `the installed ${e.type} is gone` });
  return { version, status: findings.length ? 'modified' : 'ok', findings, entries: rec.entries.length };
}

/** E_RELEASE_MODIFIED naming what changed (the first few). */
export function modifiedError(check: ReleaseCheck): CutoverError {
  const shown = check.findings.slice(0, 5).map((f) => `${f.path} (${f.problem}: ${f.detail})`);
  const more = check.findings.length > 5 ? `, and ${check.findings.length - 5} more` : '';
  return new CutoverError('E_RELEASE_MODIFIED', `releases/v${check.version} was changed after it was verified and installed: ${shown.join('; ')}${more}`, {
    hint: `reinstall it (remove releases/v${check.version}, then \`update --version v${check.version}\`), or pass --force to use it anyway`,
    details: { version: check.version, findings: check.findings },
  });
}
