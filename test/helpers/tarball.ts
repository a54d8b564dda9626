/**
 * Real tar.gz archives for tests, written block by block (512-byte ustar headers, pax records,
 * checksums) so tests can build the hostile archives that `tar` itself refuses to make:
 * `../x`, absolute paths, escaping symlinks, hardlinks, devices, FIFOs, setuid, odd owners,
 * lying sizes, truncated streams.
 */
import { createGzip, gzipSync } from 'node:zlib';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';

export interface TarEntry {
  path: string;
  type?: TarEntryType;
  /** Raw typeflag character, overriding `type` (e.g. 'S' sparse, 'L' GNU long name, 'x' pax). */
  typeflag?: string;
  body?: Buffer | string;
  /** Defaults: 0o644 files, 0o755 directories, 0o777 symlinks. */
  mode?: number;
  uid?: number;
  gid?: number;
  linkpath?: string;
  /** Size written in the header; defaults to the body's length. The body is written as given. */
  size?: number;
  /** Seconds since the epoch; default a fixed date. */
  mtime?: number;
  /** Extra pax records for a preceding `x` header (path/linkpath over 100 bytes get one anyway). */
  pax?: Record<string, string>;
  /** Write a wrong checksum. */
  badChecksum?: boolean;
}

export interface TarOptions {
  /** Cut the gzip output after this many bytes. */
  truncateAt?: number;
  /** Cut the uncompressed tar after this many bytes (a valid gzip of a damaged tar). */
  truncateTarAt?: number;
  /** Write the two zero blocks that end an archive (default true). */
  eof?: boolean;
  /** Bytes appended after the end-of-archive marker. */
  trailing?: Buffer;
}

export const BLOCK = 512;
export const DEFAULT_MTIME = 1_700_000_000;

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  dir: '5',
  fifo: '6',
};

function octal(buf: Buffer, off: number, width: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length <= width - 1) {
    buf.write(digits.padStart(width - 1, '0') + '\0', off, width, 'ascii');
    return;
  }
  // GNU base-256 for values that do not fit (huge sizes): high bit set, big-endian.
  let v = BigInt(value);
  for (let i = off + width - 1; i > off; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[off] = 0x80;
}

function header(fields: {
  path: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkpath: string;
  badChecksum?: boolean;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(fields.path, 0, 100, 'utf8');
  octal(h, 100, 8, fields.mode);
  octal(h, 108, 8, fields.uid);
  octal(h, 116, 8, fields.gid);
  octal(h, 124, 12, fields.size);
  octal(h, 136, 12, fields.mtime);
  h.write(fields.typeflag, 156, 1, 'latin1');
  h.write(fields.linkpath, 157, 100, 'utf8');
  h.write('ustar\u000000', 257, 8, 'latin1');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  octal(h, 329, 8, 0);
  octal(h, 337, 8, 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  if (fields.badChecksum) sum += 1;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

function padded(body: Buffer): Buffer {
  const rest = body.length % BLOCK;
  return rest === 0 ? body : Buffer.concat([body, Buffer.alloc(BLOCK - rest)]);
}

function paxRecord(key: string, value: string): string {
  const tail = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(tail) + 1;
  while (String(len).length + Buffer.byteLength(tail) !== len) len = String(len).length + Buffer.byteLength(tail);
  return `${len}${tail}`;
}

/** The blocks for one entry (with its pax header when needed), no end marker. */
export function entryBlocks(e: TarEntry): Buffer {
  const type = e.type ?? 'file';
  const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
  const linkpath = e.linkpath ?? '';
  const pax: Record<string, string> = { ...e.pax };
  if (Buffer.byteLength(e.path) > 100) pax.path ??= e.path;
  if (Buffer.byteLength(linkpath) > 100) pax.linkpath ??= linkpath;
  const parts: Buffer[] = [];
  if (Object.keys(pax).length > 0) {
    const records = Buffer.from(
      Object.entries(pax)
        .map(([k, v]) => paxRecord(k, v))
        .join(''),
    );
    parts.push(
      header({ path: 'PaxHeader/x', typeflag: 'x', mode: 0o644, uid: 0, gid: 0, size: records.length, mtime: DEFAULT_MTIME, linkpath: '' }),
      padded(records),
    );
  }
  const defaultMode = type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644;
  parts.push(
    header({
      path: Buffer.byteLength(e.path) > 100 ? e.path.slice(0, 99) : e.path,
      typeflag: e.typeflag ?? TYPEFLAG[type],
      mode: e.mode ?? defaultMode,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: e.size ?? body.length,
      mtime: e.mtime ?? DEFAULT_MTIME,
      linkpath: Buffer.byteLength(linkpath) > 100 ? linkpath.slice(0, 99) : linkpath,
      ...(e.badChecksum ? { badChecksum: true } : {}),
    }),
    padded(body),
  );
  return Buffer.concat(parts);
}

/** An uncompressed tar. */
export function makeTar(entries: TarEntry[], opts: TarOptions = {}): Buffer {
  const parts = entries.map(entryBlocks);
  if (opts.eof !== false) parts.push(Buffer.alloc(2 * BLOCK));
  if (opts.trailing) parts.push(opts.trailing);
  const tar = Buffer.concat(parts);
  return opts.truncateTarAt === undefined ? tar : tar.subarray(0, opts.truncateTarAt);
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** A gzip-compressed tar, optionally truncated. */
export function makeTarGz(entries: TarEntry[], opts: TarOptions = {}): Buffer {
  const gz = gzip(makeTar(entries, opts));
  return opts.truncateAt === undefined ? gz : gz.subarray(0, opts.truncateAt);
}

export interface ReleaseSpec {
  name: string;
  version: string;
  /** Path → content. Content starting with `#!` is made executable (0o755). */
  files?: Record<string, string | Buffer>;
  /** Put everything under this one directory, like `demo-1.4.0/…`. */
  topDir?: string;
  /** Extra release.json fields. */
  manifest?: Record<string, unknown>;
}

/** A normal, valid release archive: release.json plus files, directories listed before contents. */
export function releaseEntries(spec: ReleaseSpec): TarEntry[] {
  const prefix = spec.topDir === undefined ? '' : `${spec.topDir}/`;
  const files: Record<string, string | Buffer> = {
    'release.json': JSON.stringify({ name: spec.name, version: spec.version, ...spec.manifest }, null, 2) + '\n',
    ...spec.files,
  };
  const entries: TarEntry[] = [];
  const dirs = new Set<string>();
  if (spec.topDir !== undefined) {
    entries.push({ path: `${spec.topDir}/`, type: 'dir' });
  }
  for (const [rel, content] of Object.entries(files)) {
    const segs = rel.split('/');
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/');
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      entries.push({ path: `${prefix}${dir}/`, type: 'dir' });
    }
    const body = Buffer.from(content);
    entries.push({ path: `${prefix}${rel}`, body, mode: body.subarray(0, 2).toString() === '#!' ? 0o755 : 0o644 });
  }
  return entries;
}

export function makeRelease(spec: ReleaseSpec): Buffer {
  return makeTarGz(releaseEntries(spec));
}

/**
 * A decompression bomb that is otherwise a valid release: release.json, then `files` files of
 * zeros (`unpackedBytes` in all), gzipped as a stream so the zeros never sit in memory. Deflate
 * packs zeros about 1000:1, so 1 GiB unpacked is a download of about 1 MiB.
 */
export async function makeZeroBomb(name: string, version: string, unpackedBytes: number, opts: { files?: number } = {}): Promise<Buffer> {
  const files = opts.files ?? 1;
  const each = Math.floor(unpackedBytes / files);
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (d: Buffer) => out.push(d));
  const done = new Promise<void>((resolve, reject) => {
    gz.on('end', resolve);
    gz.on('error', reject);
  });
  const write = async (b: Buffer): Promise<void> => {
    if (!gz.write(b)) await new Promise((r) => gz.once('drain', r));
  };
  for (const e of releaseEntries({ name, version })) await write(entryBlocks(e));
  await write(entryBlocks({ path: 'zeros/', type: 'dir' }));
  const zeros = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < files; i++) {
    await write(entryBlocks({ path: `zeros/${i}.bin`, size: each, body: Buffer.alloc(0) }));
    for (let left = each; left > 0; left -= zeros.length) await write(left >= zeros.length ? zeros : zeros.subarray(0, left));
    if (each % BLOCK !== 0) await write(Buffer.alloc(BLOCK - (each % BLOCK)));
  }
  await write(Buffer.alloc(2 * BLOCK));
  gz.end();
  await done;
  return Buffer.concat(out);
}
