/**
 * `cutover release pack DIR`: a reproducible release archive that `update` accepts. The tree is
 * walked without following links and every entry passes the extractor's own rules
 * (archive/entry-rules.ts) before a byte is written; what normalising can mend (modes, owners,
 * times) is mended, what it cannot (links that escape, hardlinks, devices, FIFOs, sockets,
 * setuid/setgid) is refused with the entry's name. Output: ustar (pax records only for long
 * paths and large sizes, never atime/ctime, no global header), entries in byte order of their
 * full path with release.json first, every mtime SOURCE_DATE_EPOCH, owner 0:0, gzip level 9.
 * The same input gives the same bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { checkEntryPath, checkLinkChains, checkLinkTarget, checkSpecialBits, fold, HINT_PATHS, refuseType, unsafe, type Kind } from '../archive/entry-rules.ts';
import { resolveLimits } from '../archive/limits.ts';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { dataContract, type ReleaseManifest } from './manifest.ts';
import { checkVersion } from './release-index.ts';

export interface PackOptions {
  dir: string;
  name: string;
  version: string;
  out: string;
  /** release.json fields given as flags (schema, migrate, …), merged over the directory's own. */
  fields: Record<string, unknown>;
  /** Seconds since the epoch for every mtime (SOURCE_DATE_EPOCH; 0 when unset). */
  mtime: number;
}

export interface PackResult {
  file: string;
  sha256: string;
  size: number;
  unpacked_size: number;
}

interface Entry {
  rel: string;
  kind: Kind;
  mode: number;
  size: number;
  target?: string;
  abs?: string;
}

const BLOCK = 512;
const MANIFEST = 'release.json';
/** The directory that becomes a link to ROOT/runtime on install. */
const RUNTIME = 'runtime';

/** The release.json to write: the directory's own (if any) with the flags over it; name and version must agree. */
async function manifestFor(opts: PackOptions): Promise<Buffer> {
  let own: Record<string, unknown> = {};
  const file = path.join(opts.dir, MANIFEST);
  try {
    const st = await lstat(file);
    if (!st.isFile())
      throw new CutoverError('E_RELEASE_MANIFEST', `${file} is not a regular file`, { hint: 'make release.json a plain JSON file, or remove it' });
    const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    own = parsed as Record<string, unknown>;
  } catch (e) {
    if (e instanceof CutoverError) throw e;
    if (errnoCode(e) !== 'ENOENT') {
      throw new CutoverError('E_RELEASE_MANIFEST', `${file} cannot be used: ${(e as Error).message}`, {
        hint: 'fix release.json (a JSON object), or remove it',
      });
    }
  }
  const bare = (v: unknown): string => String(v).replace(/^v/i, '');
  if (own.name !== undefined && own.name !== opts.name) {
    throw new CutoverError('E_RELEASE_MANIFEST', `${file} names the app ${JSON.stringify(own.name)}, but --name is ${JSON.stringify(opts.name)}`, {
      hint: 'make them agree',
    });
  }
  if (own.version !== undefined && bare(own.version) !== opts.version) {
    throw new CutoverError('E_RELEASE_MANIFEST', `${file} says version ${JSON.stringify(own.version)}, but --version is ${opts.version}`, {
      hint: 'make them agree',
    });
  }
  const m = { ...own, ...opts.fields, name: opts.name, version: opts.version } as ReleaseManifest;
  dataContract(m, `${MANIFEST} (${opts.dir})`);
  const ordered = { name: m.name, version: m.version, ...Object.fromEntries(Object.entries(m).filter(([k]) => k !== 'name' && k !== 'version')) };
  return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`);
}

/** Every entry under `dir`, checked, links never followed, in byte order of their paths. */
async function walk(dir: string): Promise<Entry[]> {
  const limits = resolveLimits();
  const out: Entry[] = [];
  const visit = async (rel: string): Promise<void> => {
    const abs = rel ? path.join(dir, rel) : dir;
    let names: string[];
    try {
      names = await readdir(abs);
    } catch (e) {
      throw fsError('read', abs, e);
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (r === MANIFEST) continue;
      const p = path.join(dir, r);
      const st = await lstat(p);
      checkEntryPath(r, limits);
      if (st.isSymbolicLink()) {
        const target = await readlink(p);
        out.push({ rel: r, kind: 'symlink', mode: 0o777, size: 0, target: checkLinkTarget(r, r, target, limits.maxPathBytes) });
        continue;
      }
      if (st.isDirectory()) {
        // A directory's mode is normalised to 0755 (setgid or sticky on a build directory is harmless once dropped).
        out.push({ rel: r, kind: 'dir', mode: 0o755, size: 0 });
        await visit(r);
        continue;
      }
      if (st.isFile()) {
        if (st.nlink > 1) refuseType(r, 'hardlink');
        // setuid/setgid would be a decision of the vendor's that cutover never carries out: refused, not dropped.
        if (st.mode & 0o6000) checkSpecialBits(r, st.mode);
        out.push({ rel: r, kind: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, size: st.size, abs: p });
        continue;
      }
      refuseType(r, st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'blockdev' : st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : 'unknown');
    }
  };
  await visit('');
  const key = (e: Entry): Buffer => Buffer.from(e.kind === 'dir' ? `${e.rel}/` : e.rel);
  out.sort((a, b) => Buffer.compare(key(a), key(b)));
  checkTree(out);
  return out;
}

/**
 * What the extractor checks across entries, on the archive's order: no path that differs only in
 * case from a symlink (it would alias the link on a case-insensitive filesystem), and no link
 * chain that leaves the release or loops. runtime/ becomes the link to ROOT/runtime on install,
 * so links inside it are not followed, as the extractor does.
 */
function checkTree(entries: Entry[]): void {
  const folds = new Map<string, string>();
  const links = new Map<string, string>();
  for (const e of entries) {
    if (e.kind === 'symlink') {
      if (e.rel !== RUNTIME && !e.rel.startsWith(`${RUNTIME}/`)) links.set(e.rel, e.target as string);
      folds.set(fold(e.rel), e.rel);
    }
  }
  // Every directory on the way to an entry is an entry of its own (walk lists them all), so
  // checking each entry's own path covers every prefix.
  if (folds.size > 0) {
    for (const e of entries) {
      const link = folds.get(fold(e.rel));
      if (link !== undefined && link !== e.rel) throw unsafe(e.rel, `differs only in case from the symlink ${JSON.stringify(link)}`, HINT_PATHS);
    }
  }
  checkLinkChains(links, { rootDepth: 0, linked: RUNTIME });
}

function octalField(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** A pax extended header carrying `records` (path, linkpath, size) for the entry that follows. */
function paxHeader(records: Record<string, string>, mtime: number): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    body += `${len}${rest}`;
  }
  const data = Buffer.from(body);
  return Buffer.concat([header({ name: 'PaxHeader', mode: 0o644, size: data.length, mtime, type: 'x', linkname: '' }), pad(data)]);
}

function pad(data: Buffer): Buffer {
  const rem = data.length % BLOCK;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rem)]);
}

function header(h: { name: string; mode: number; size: number; mtime: number; type: string; linkname: string; prefix?: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octalField(h.mode, 8), 100, 'ascii');
  b.write(octalField(0, 8), 108, 'ascii');
  b.write(octalField(0, 8), 116, 'ascii');
  b.write(octalField(h.size, 12), 124, 'ascii');
  b.write(octalField(h.mtime, 12), 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(h.type, 156, 'ascii');
  b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write(octalField(0, 8), 329, 'ascii');
  b.write(octalField(0, 8), 337, 'ascii');
  if (h.prefix) b.write(h.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

const MAX_OCTAL_SIZE = 0o77777777777;

/** The header blocks of one entry: a pax header first when the path, target or size does not fit ustar. */
function headersFor(e: { rel: string; kind: Kind; mode: number; size: number; target?: string }, mtime: number): Buffer {
  const name = e.kind === 'dir' ? `${e.rel}/` : e.rel;
  const pax: Record<string, string> = {};
  let ustarName = name;
  let prefix = '';
  const ascii = /^[\x20-\x7e]*$/;
  if (Buffer.byteLength(name) > 100 || !ascii.test(name)) {
    const cut = name.lastIndexOf('/', name.length - 2);
    const head = name.slice(0, Math.max(0, cut));
    const tail = name.slice(cut + 1);
    if (cut > 0 && ascii.test(name) && head.length <= 155 && tail.length <= 100) {
      prefix = head;
      ustarName = tail;
    } else {
      pax.path = name;
      ustarName = name.slice(0, 100).replace(/[^\x20-\x7e]/g, '_');
    }
  }
  const target = e.target ?? '';
  if (Buffer.byteLength(target) > 100 || !ascii.test(target)) pax.linkpath = target;
  if (e.size > MAX_OCTAL_SIZE) pax.size = String(e.size);
  const type = e.kind === 'file' ? '0' : e.kind === 'dir' ? '5' : '2';
  const main = header({
    name: ustarName,
    mode: e.mode,
    size: e.size > MAX_OCTAL_SIZE ? 0 : e.size,
    mtime,
    type,
    linkname: pax.linkpath ? '' : target,
    ...(prefix ? { prefix } : {}),
  });
  return Object.keys(pax).length ? Buffer.concat([paxHeader(pax, mtime), main]) : main;
}

/** The tar stream: release.json, then every entry with its body, then two zero blocks. */
async function* tarStream(manifest: Buffer, entries: Entry[], mtime: number): AsyncGenerator<Buffer> {
  yield headersFor({ rel: MANIFEST, kind: 'file', mode: 0o644, size: manifest.length }, mtime);
  yield pad(manifest);
  for (const e of entries) {
    yield headersFor(e, mtime);
    if (e.kind !== 'file' || !e.abs) continue;
    let n = 0;
    const fh = await open(e.abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      for (;;) {
        // A fresh buffer per chunk: the consumer (gzip) may still hold the previous one.
        const buf = Buffer.allocUnsafe(Math.min(1 << 20, e.size - n + 1));
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n > e.size) break;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
    if (n !== e.size)
      throw new CutoverError('E_FS', `${e.abs} changed while it was packed (${e.size} bytes expected)`, { hint: 'pack a build directory nothing writes to' });
    const rem = e.size % BLOCK;
    if (rem) yield Buffer.alloc(BLOCK - rem);
  }
  yield Buffer.alloc(BLOCK * 2);
}

export async function packRelease(opts: PackOptions): Promise<PackResult> {
  const v = checkVersion(opts.version);
  if (!v.ok) throw new CutoverError('E_USAGE', `--version ${v.reason.replace(/^version /, '')}`, { hint: 'pass a version like 1.4.0' });
  const st = await lstat(opts.dir).catch((e: unknown) => {
    throw fsError('read', opts.dir, e);
  });
  if (!st.isDirectory()) throw new CutoverError('E_USAGE', `${opts.dir} is not a directory`, { hint: 'pass the build directory to pack' });
  const manifest = await manifestFor({ ...opts, version: v.version });
  const entries = await walk(opts.dir);
  await mkdir(opts.out, { recursive: true });
  const file = path.join(opts.out, `${opts.name}-${v.version}.tar.gz`);
  const tmp = path.join(opts.out, `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  const hash = createHash('sha256');
  let size = 0;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await pipeline(Readable.from(tarStream(manifest, entries, opts.mtime)), createGzip({ level: 9 }), async function* (gz: AsyncIterable<Buffer>) {
        for await (const chunk of gz) {
          hash.update(chunk);
          size += chunk.length;
          await fh.write(chunk);
        }
        yield* [];
      });
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e instanceof CutoverError ? e : fsError('write', file, e);
  }
  const unpacked = manifest.length + entries.reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0);
  return { file, sha256: hash.digest('hex'), size, unpacked_size: unpacked };
}
