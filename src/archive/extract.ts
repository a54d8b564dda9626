/**
 * Unpack a release tarball (`.tar.gz`) into an empty private staging directory.
 *
 * The archive has passed signature verification, but every entry is still treated as hostile:
 * each header is checked before anything is written, and anything unusual stops the whole
 * extraction. One streaming pass: file → zlib gunzip (threadpool) → node-tar's `Parser`
 * (headers, pax, GNU long names; `strict`, every warning fatal) → our own writer.
 *
 * We use node-tar's parser but not its `Unpack`: its safety net strips and warns where we must
 * refuse, it chowns to the archive's owner when run as root, it re-checks the disk with
 * several syscalls per entry, and after an abort it cannot tell when its in-flight writes are
 * done. Our writer knows the staging directory was empty and private, so it keeps the whole
 * tree in memory and never has to ask the disk: a path that would pass through a symlink or a
 * file is refused from that map, and every create is O_EXCL|O_NOFOLLOW (mkdir never follows)
 * as a second line of defence.
 *
 * Speed: gunzip runs in the threadpool while the main thread parses and writes each
 * decompressed chunk with synchronous syscalls (open, write, futimes, close; no stat, no
 * chown), like `tar xzf` with its gzip child. Measured against `tar xzf` on thousands of small
 * files this is on par; handing creates to the threadpool was slower (more CPU per file).
 * Synchronous writes also mean nothing is in flight once the stream stops: when the promise
 * rejects, the last descriptor is already closed.
 */
import { createHash, hash, randomBytes, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import {
  checkEntryPath,
  checkLinkTarget,
  checkSpecialBits,
  checkWritableBits,
  HINT_LINK,
  HINT_TYPE,
  HINT_OWNER,
  HINT_PATHS,
  limit,
  refuseType,
  unsafe,
  type Kind,
  checkLinkChains,
  fold,
} from './entry-rules.ts';
import { resolveLimits, type ExtractLimits } from './limits.ts';

export interface ExtractOptions {
  limits?: Partial<ExtractLimits>;
  signal?: AbortSignal;
  /** Unpacked bytes allowed per archive byte (`[disk] max_ratio`); 0 or undefined: no ratio cap. */
  maxRatio?: number;
  /** The unpacked size the index declares (`unpacked_size`): content beyond it is refused. */
  declaredUnpackedBytes?: number;
  /** Disk bytes the extraction may take (see `diskBytes`); beyond it is refused before writing. */
  budgetBytes?: number;
  /**
   * A top-level name that the installer replaces with a link to `ROOT/<name>` (default
   * `runtime`): symlinks are checked as if it already were that link, so they may resolve into
   * it but never out of it. null: no such directory.
   */
  linkedDir?: string | null;
  /** Hash every file as it is written and return what was installed (ExtractResult.record), for `verify`. */
  record?: boolean;
}

/** One entry as it was installed: what `verify` compares the tree with later. */
export interface RecordedEntry {
  path: string;
  type: Kind;
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}

export interface ExtractResult {
  /** Archive entries of any type (not counting pax/GNU meta headers). */
  entries: number;
  /** Regular files written. */
  files: number;
  /** Bytes of regular-file content written. */
  bytes: number;
  /** The single top-level directory that was stripped, or null. */
  stripped: string | null;
  /** Disk bytes the tree takes, estimated: files rounded up to 4 KiB blocks, 4 KiB per directory. */
  diskBytes: number;
  /** With `record`: every entry (after stripping), in path order. */
  record?: RecordedEntry[];
}

/** One allocation unit of the usual filesystems (ext4, xfs, tmpfs on x86-64). */
const DISK_BLOCK = 4096;
const onDisk = (bytes: number): number => Math.ceil(bytes / DISK_BLOCK) * DISK_BLOCK;

/** A ceiling on the unpacked content or on the disk it takes, with how to word its refusal. */
interface Cap {
  bytes: number;
  /** 'content': regular-file bytes; 'disk': the diskBytes estimate. */
  on: 'content' | 'disk';
  problem: string;
  hint: string;
  details: Record<string, unknown>;
}

const READ_CHUNK = 64 * 1024;
const INFLATE_CHUNK = 64 * 1024;
/** GNU tar pads to a 10 KiB record; anything much beyond the end marker is not a tarball. */
const MAX_TRAILING_BYTES = 1024 * 1024;
/** pax/GNU headers (x, g, L, K) that may precede one real entry. */
const MAX_META_RUN = 8;
const MANIFEST = 'release.json';
/** Files up to this size are hashed in one call once written (see OpenFile.chunks). */
const SMALL_FILE = 256 * 1024;

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

const HINT_CORRUPT = 'download the release again; if it keeps failing, the published archive is damaged — tell the vendor';
const HINT_BOMB =
  'do not install this archive: it expands far more than a release should (a decompression bomb?); tell the vendor, or raise [disk] max_ratio if it is genuine';
const HINT_DECLARED = 'the archive is larger than its index entry says; do not install it, tell the vendor';
const HINT_BUDGET = "free disk space on the install root's filesystem (or prune old releases with `gc`), then retry";

interface Node {
  kind: Kind;
  /** Permission bits to apply (files at close, directories at the end). */
  mode: number;
  mtime: Date | undefined;
  atime: Date | undefined;
  /** Symlink target. */
  target: string | undefined;
  /** Recorded when the file was written (opts.record). */
  size?: number;
  sha256?: string;
}

/** What the header check decided for one entry, consumed when the entry's body arrives. */
interface Planned {
  rel: string;
  segs: string[];
  node: Node;
  /** An earlier entry of the same type had this path: remove it first (last one wins, like tar). */
  replace: boolean;
}

/** The regular file whose body is arriving now. */
interface OpenFile {
  rel: string;
  node: Node;
  fd: number;
  size: number;
  hash?: Hash;
  /** A small file's body, hashed once when it ends. */
  chunks?: Buffer[];
}

const q = (p: string): string => JSON.stringify(p);

/** The ceilings beyond the fixed limits: declared size, expansion ratio, disk budget. */
function capsFor(opts: ExtractOptions, archiveBytes: number): Cap[] {
  const caps: Cap[] = [];
  const declared = opts.declaredUnpackedBytes;
  if (declared !== undefined) {
    caps.push({
      bytes: declared,
      on: 'content',
      problem: `takes the archive past its declared unpacked size of ${declared} bytes (index unpacked_size)`,
      hint: HINT_DECLARED,
      details: { declaredUnpackedBytes: declared },
    });
  }
  if (opts.maxRatio !== undefined && opts.maxRatio > 0) {
    const bytes = Math.max(1, archiveBytes) * opts.maxRatio;
    caps.push({
      bytes,
      on: 'content',
      problem: `takes the archive past ${bytes} unpacked bytes, ${opts.maxRatio} times its ${archiveBytes}-byte download ([disk] max_ratio)`,
      hint: HINT_BOMB,
      details: { maxRatio: opts.maxRatio, archiveBytes },
    });
  }
  if (opts.budgetBytes !== undefined) {
    caps.push({
      bytes: opts.budgetBytes,
      on: 'disk',
      problem: `would take the release past the ${opts.budgetBytes} bytes of disk space it may use (free space minus the reserve and the download)`,
      hint: HINT_BUDGET,
      details: { budgetBytes: opts.budgetBytes },
    });
  }
  return caps;
}

function corrupt(problem: string, cause?: unknown, entry?: string): CutoverError {
  return new CutoverError('E_ARCHIVE_CORRUPT', problem, {
    hint: HINT_CORRUPT,
    ...(cause === undefined ? {} : { cause }),
    ...(entry === undefined ? {} : { details: { entry } }),
  });
}

/**
 * Extract `archivePath` (.tar.gz) into `destDir`, which must exist, be empty and be private to
 * the caller. Resolves with counts; rejects with E_ARCHIVE_UNSAFE / E_ARCHIVE_CORRUPT /
 * E_ARCHIVE_LIMIT / E_NO_SPACE / E_FS, or with `signal.reason` when aborted. On rejection,
 * destDir holds a partial tree that the caller must remove; no write is in flight by then.
 * If every entry lives under one top-level directory that holds release.json, that directory
 * is stripped (its contents end up directly in destDir) and its name is returned as `stripped`.
 */
export async function extractRelease(archivePath: string, destDir: string, opts: ExtractOptions = {}): Promise<ExtractResult> {
  opts.signal?.throwIfAborted();
  let archiveBytes: number;
  try {
    archiveBytes = (await fs.promises.stat(archivePath)).size;
  } catch (e) {
    throw fsError('read', archivePath, e);
  }
  return extractStream(fs.createReadStream(archivePath, { highWaterMark: READ_CHUNK }), { label: archivePath, bytes: archiveBytes }, destDir, opts);
}

/**
 * The same extraction from a stream of gzip bytes (a download as it arrives). `archive.bytes`
 * is the archive's size (the index's, for a download) that max_ratio is reckoned on; `label`
 * names it in messages. The caller owns the source: it counts and hashes what flows through,
 * and promotes nothing until the whole archive is the one that was signed.
 */
export async function extractStream(
  source: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  archive: { label: string; bytes: number },
  destDir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  const limits = resolveLimits(opts.limits);
  const { signal } = opts;
  signal?.throwIfAborted();
  const root = path.resolve(destDir);
  await checkStaging(root);
  const linkedDir = opts.linkedDir === undefined ? 'runtime' : opts.linkedDir;
  const x = new Extraction(root, limits, await readUmask(), capsFor(opts, archive.bytes), linkedDir, opts.record ?? false);
  try {
    await pipeline(
      source,
      createGunzip({ chunkSize: INFLATE_CHUNK }),
      async (inflated: AsyncIterable<Buffer>) => {
        for await (const chunk of inflated) x.write(chunk);
      },
      signal ? { signal } : {},
    );
    x.end();
  } catch (e) {
    // Writes are synchronous: by now nothing is in flight; fail() closes the open file.
    x.fail(x.explain(e, archive.label, signal));
    throw x.failure;
  }
  return x.finish();
}

async function checkStaging(root: string): Promise<void> {
  let names: string[];
  try {
    const st = await fs.promises.lstat(root);
    if (!st.isDirectory()) {
      throw new CutoverError('E_FS', `extraction target ${root} is not a directory`, {
        hint: 'extract into a fresh empty directory (mkdtemp)',
      });
    }
    names = await fs.promises.readdir(root);
  } catch (e) {
    if (e instanceof CutoverError) throw e;
    throw fsError('open staging directory', root, e);
  }
  if (names.length > 0) {
    throw new CutoverError('E_FS', `extraction target ${root} is not empty`, {
      hint: 'extract into a fresh empty directory (mkdtemp)',
    });
  }
}

class Extraction {
  readonly root: string;
  readonly limits: ExtractLimits;
  /** The process umask if known: files whose mode it leaves alone need no fchmod. */
  readonly umask: number | undefined;
  readonly parser: Parser;
  readonly caps: Cap[];
  readonly linkedDir: string | null;
  readonly record: boolean;

  /** Every path the archive has produced so far (raw archive-relative, normalised). */
  readonly tree = new Map<string, Node>();
  /** Directories that exist on disk. */
  readonly made = new Set<string>();
  /** Folded paths of symlinks, for the case-insensitive-filesystem check. */
  readonly linkFolds = new Set<string>();
  readonly planned = new WeakMap<ReadEntry, Planned>();

  /** The first error; everything after it is only cleanup. */
  failure: unknown = undefined;
  entries = 0;
  files = 0;
  bytes = 0;
  /** Estimated disk use so far (see ExtractResult.diskBytes). */
  diskBytes = 0;
  /** First path segment shared by all entries so far; null once two differ. */
  top: string | null | undefined = undefined;

  sawNullBlock = false;
  sawEof = false;
  trailing = 0;
  metaRun = 0;
  metaNul = false;
  sniffed = false;

  current: OpenFile | undefined;

  constructor(root: string, limits: ExtractLimits, umask: number | undefined, caps: Cap[], linkedDir: string | null, record = false) {
    this.record = record;
    this.root = root;
    this.limits = limits;
    this.umask = umask;
    this.caps = caps;
    this.linkedDir = linkedDir;
    this.parser = new Parser({
      strict: true,
      brotli: false,
      zstd: false,
      filter: (_p, entry) => this.check(entry as ReadEntry),
      onReadEntry: (entry) => this.onEntry(entry),
      onwarn: (code, message) => this.fail(corrupt(`archive is damaged: ${code}: ${message}`)),
    });
    this.parser.on('error', (e: Error & { tarCode?: string; entry?: ReadEntry; header?: { path?: string } }) => {
      const where = e.entry?.path ?? e.header?.path;
      this.fail(corrupt(`archive is damaged${where ? ` at entry ${q(where)}` : ''}: ${e.message}`, e, where));
    });
    // node-tar skips, silently, entry types it does not know and oversized pax headers.
    this.parser.on('ignoredEntry', (entry: ReadEntry) => {
      if (entry.meta) {
        this.fail(corrupt(`archive has a ${String(entry.type)} header larger than 1 MiB before ${q(entry.path)}`));
      } else {
        this.fail(unsafe(entry.path, `has unsupported type ${q(String(entry.type))}`, HINT_TYPE));
      }
    });
    this.parser.on('meta', (text: string) => {
      if (this.sawNullBlock) this.fail(corrupt('archive has entries after a zero block'));
      // node-tar cuts pax values and GNU long names at a NUL; refuse the trick instead.
      if (text.replace(/\0+$/, '').includes('\0')) this.metaNul = true;
      if (++this.metaRun > MAX_META_RUN) this.fail(corrupt(`archive has more than ${MAX_META_RUN} extended headers in a row`));
    });
    this.parser.on('nullBlock', () => {
      this.sawNullBlock = true;
    });
    this.parser.on('eof', () => {
      this.sawEof = true;
    });
  }

  /** The first failure, to throw: always an Error (a CutoverError, or the abort signal's reason). */
  failed(): Error {
    return this.failure as Error;
  }

  /** Record the first failure, stop the parser, close the open file. */
  fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    // A plain Error: the parser decorates what it is given and re-emits it as 'error'.
    this.parser.abort(new Error('extraction stopped'));
    this.closeCurrent();
  }

  /** Feed one decompressed chunk. Throws the first failure, so the pipeline stops reading. */
  write(chunk: Buffer): void {
    if (this.failure !== undefined) throw this.failed();
    if (this.sawEof) {
      this.trailing += chunk.length;
      if (this.trailing > MAX_TRAILING_BYTES) {
        this.fail(corrupt(`archive has more than ${MAX_TRAILING_BYTES} bytes after its end-of-archive marker`));
        throw this.failed();
      }
      return;
    }
    if (!this.sniffed && chunk.length > 0) {
      this.sniffed = true;
      // The parser would transparently gunzip a second layer; a release is compressed once.
      if (chunk[0] === 0x1f && (chunk.length < 2 || chunk[1] === 0x8b)) {
        this.fail(corrupt('archive is compressed twice (gzip inside gzip)'));
        throw this.failed();
      }
    }
    this.parser.write(chunk);
    if (this.failure !== undefined) throw this.failed();
  }

  /** The decompressed stream ended. */
  end(): void {
    if (this.failure !== undefined) throw this.failed();
    if (!this.sawEof) {
      const rel = this.current?.rel;
      const inside = rel === undefined ? '' : ` inside entry ${q(rel)}`;
      this.fail(corrupt(`archive is truncated${inside}: no end-of-archive marker`, undefined, rel));
      throw this.failed();
    }
  }

  explain(e: unknown, archivePath: string, signal: AbortSignal | undefined): unknown {
    if (this.failure !== undefined) return this.failure;
    if (signal?.aborted) return signal.reason;
    if (e instanceof CutoverError) return e;
    const code = errnoCode(e);
    if (code?.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED') {
      const msg = e instanceof Error ? e.message : String(e);
      const what = code === 'Z_BUF_ERROR' ? 'is truncated' : 'is not a valid gzip stream';
      return corrupt(`archive ${archivePath} ${what} (${msg})`, e);
    }
    if (code !== undefined && !code.startsWith('ERR_')) return fsError('read', archivePath, e);
    return e;
  }

  // ---- header check: runs for every non-meta entry before its body is read ----

  check(entry: ReadEntry): boolean {
    if (this.failure !== undefined) return false;
    try {
      const plan = this.plan(entry);
      if (plan) this.planned.set(entry, plan);
      return true;
    } catch (e) {
      this.fail(e instanceof CutoverError ? e : corrupt(`cannot read archive entry ${q(entry.path)}`, e, entry.path));
      return false;
    }
  }

  /** Validate one header against the limits and the tree so far. Null: the root entry itself. */
  plan(entry: ReadEntry): Planned | null {
    const { limits } = this;
    const raw = entry.path;
    this.metaRun = 0;
    if (this.sawNullBlock) throw corrupt(`archive has entry ${q(raw)} after a zero block`, undefined, raw);
    if (++this.entries > limits.maxEntries) {
      throw limit(undefined, `has more than ${limits.maxEntries} entries`, { maxEntries: limits.maxEntries });
    }
    if (this.metaNul && !raw.includes('\0')) throw unsafe(raw, 'has a NUL byte in its pax/GNU extended header', HINT_PATHS);
    const segs = checkEntryPath(raw, limits);

    const kind = kindOf(entry);
    if (kind === undefined) refuseType(raw, TAR_TYPES[entry.type] ?? entry.type);
    if (entry.uid !== 0 || entry.gid !== 0) {
      throw unsafe(raw, `is owned by uid ${String(entry.uid)} gid ${String(entry.gid)}, not 0/0`, HINT_OWNER);
    }
    const size = entry.size;
    if (kind !== 'file' && size !== 0) throw corrupt(`archive entry ${q(raw)} is a ${kind} with a body`, undefined, raw);

    if (segs.length === 0) {
      // `./` from `tar -C dir .`: the release root itself. Its mode is never applied.
      if (kind !== 'dir') throw unsafe(raw, 'would replace the release root', HINT_PATHS);
      return null;
    }

    let mode = 0;
    if (kind !== 'symlink') {
      if (typeof entry.mode !== 'number') throw corrupt(`archive entry ${q(raw)} has no valid mode`, undefined, raw);
      checkSpecialBits(raw, entry.mode);
      checkWritableBits(raw, entry.mode);
      mode = kind === 'dir' ? (entry.mode & 0o755) | 0o700 : entry.mode & 0o755;
    }

    if (kind === 'file') {
      if (size > limits.maxFileBytes) {
        throw limit(raw, `is ${size} bytes, over the ${limits.maxFileBytes}-byte limit per file`, {
          maxFileBytes: limits.maxFileBytes,
        });
      }
      if (this.bytes + size > limits.maxTotalBytes) {
        throw limit(raw, `takes the archive over ${limits.maxTotalBytes} unpacked bytes`, {
          maxTotalBytes: limits.maxTotalBytes,
        });
      }
      // Refused from the header, before a byte of it is written.
      this.checkCaps(raw, this.bytes + size, this.diskBytes + onDisk(size));
    }

    const rel = segs.join('/');
    let target: string | undefined;
    if (kind === 'symlink') target = this.checkLinkTarget(raw, rel, entry.linkpath ?? '');

    this.checkParents(raw, segs);

    const first = segs[0] as string;
    if (this.top === undefined) this.top = first;
    else if (this.top !== first) this.top = null;

    const existing = this.tree.get(rel);
    if (existing && existing.kind !== kind) {
      throw unsafe(raw, `is a ${kind} but an earlier entry made the same path a ${existing.kind}`, HINT_PATHS);
    }
    if (this.linkFolds.size > 0 && !existing && this.linkFolds.has(fold(rel))) {
      throw unsafe(raw, 'differs only in case from an earlier symlink', HINT_PATHS);
    }
    const node: Node = { kind, mode, mtime: entry.mtime, atime: entry.atime, target };
    if (kind === 'dir' && !existing) {
      this.countDir(raw);
    }
    this.tree.set(rel, node);
    if (kind === 'symlink') this.linkFolds.add(fold(rel));
    return { rel, segs, node, replace: existing !== undefined && kind !== 'dir' };
  }

  /** One more directory on disk (explicit or implied by `raw`'s path): a block, within the caps. */
  countDir(raw: string): void {
    this.checkCaps(raw, this.bytes, this.diskBytes + DISK_BLOCK);
    this.diskBytes += DISK_BLOCK;
  }

  /** Refuse when `content` (file bytes) or `disk` (estimated disk bytes) passes a cap. */
  checkCaps(entry: string, content: number, disk: number): void {
    for (const cap of this.caps) {
      if ((cap.on === 'content' ? content : disk) > cap.bytes) throw limit(entry, cap.problem, cap.details, cap.hint);
    }
  }

  /** The target stays inside the release (entry-rules.ts); an empty one is a damaged header. */
  checkLinkTarget(raw: string, rel: string, target: string): string {
    if (target === '') throw corrupt(`archive entry ${q(raw)} is a symlink with an empty target`, undefined, raw);
    return checkLinkTarget(raw, rel, target, this.limits.maxPathBytes);
  }

  /** Every proper prefix must be (or become) a directory: never a symlink, never a file. */
  checkParents(raw: string, segs: string[]): void {
    const n = segs.length - 1;
    if (n === 0) return;
    const parentKey = segs.slice(0, n).join('/');
    if (this.tree.get(parentKey)?.kind === 'dir' && this.linkFolds.size === 0) return;
    let key = '';
    for (let i = 0; i < n; i++) {
      key = i === 0 ? (segs[0] as string) : `${key}/${segs[i] as string}`;
      const node = this.tree.get(key);
      if (node?.kind === 'symlink') throw unsafe(raw, `would be written through the symlink ${q(key)}`, HINT_LINK);
      if (node?.kind === 'file') throw unsafe(raw, `would be written below the file ${q(key)}`, HINT_PATHS);
      if (!node && this.linkFolds.size > 0 && this.linkFolds.has(fold(key))) {
        throw unsafe(raw, `would be written through the symlink ${q(key)} (case-folded)`, HINT_LINK);
      }
      if (!node) {
        this.countDir(raw);
        this.tree.set(key, { kind: 'dir', mode: 0o755, mtime: undefined, atime: undefined, target: undefined });
      }
    }
  }

  // ---- writing: runs in archive order, synchronously, after the header check passed ----

  onEntry(entry: ReadEntry): void {
    const plan = this.planned.get(entry);
    if (this.failure !== undefined || !plan) {
      entry.resume();
      return;
    }
    this.planned.delete(entry);
    try {
      this.makeParents(plan.segs);
      const abs = this.abs(plan.rel);
      if (plan.replace) fs.unlinkSync(abs);
      switch (plan.node.kind) {
        case 'dir':
          this.makeDir(plan.rel);
          entry.resume();
          return;
        case 'symlink':
          fs.symlinkSync(plan.node.target as string, abs);
          if (plan.node.mtime) fs.lutimesSync(abs, plan.node.atime ?? plan.node.mtime, plan.node.mtime);
          entry.resume();
          return;
        case 'file':
          this.startFile(entry, plan, abs);
          return;
      }
    } catch (e) {
      this.fail(this.writeError(e, plan.rel));
      entry.resume();
    }
  }

  startFile(entry: ReadEntry, plan: Planned, abs: string): void {
    const file: OpenFile = {
      rel: plan.rel,
      node: plan.node,
      fd: fs.openSync(abs, CREATE_FLAGS, plan.node.mode),
      size: 0,
      // Small files (most of a release) are hashed in one call at the end: thousands of Hash
      // objects, each holding native memory the GC does not see, cost time and RSS.
      ...(this.record ? (entry.size <= SMALL_FILE ? { chunks: [] } : { hash: createHash('sha256') }) : {}),
    };
    this.diskBytes += onDisk(entry.size);
    this.current = file;
    this.files++;
    // 'end' first: adding a 'data' listener resumes the entry, which may end at once.
    entry.on('end', () => this.endFile(file));
    entry.on('data', (chunk: Buffer) => this.writeFile(file, chunk));
  }

  writeFile(file: OpenFile, chunk: Buffer): void {
    if (this.failure !== undefined || this.current !== file) return;
    const { maxFileBytes, maxTotalBytes } = this.limits;
    file.size += chunk.length;
    this.bytes += chunk.length;
    if (file.size > maxFileBytes) {
      this.fail(limit(file.rel, `is over the ${maxFileBytes}-byte limit per file`, { maxFileBytes }));
      return;
    }
    if (this.bytes > maxTotalBytes) {
      this.fail(limit(file.rel, `takes the archive over ${maxTotalBytes} unpacked bytes`, { maxTotalBytes }));
      return;
    }
    try {
      // The header promised the size (already counted on disk); the body is counted again.
      this.checkCaps(file.rel, this.bytes, this.diskBytes);
    } catch (e) {
      this.fail(e);
      return;
    }
    try {
      for (let off = 0; off < chunk.length;) off += fs.writeSync(file.fd, chunk, off, chunk.length - off);
      if (file.chunks) file.chunks.push(chunk);
      else file.hash?.update(chunk);
    } catch (e) {
      this.fail(this.writeError(e, file.rel));
    }
  }

  endFile(file: OpenFile): void {
    if (this.failure !== undefined || this.current !== file) return;
    const { node, fd } = file;
    if (file.hash || file.chunks) {
      node.sha256 = file.chunks ? hash('sha256', file.chunks.length === 1 ? file.chunks[0]! : Buffer.concat(file.chunks)) : file.hash!.digest('hex');
      node.size = file.size;
    }
    try {
      // Created with the final mode; only a umask that cut bits into it needs a chmod.
      if (this.umask === undefined || (node.mode & this.umask) !== 0) fs.fchmodSync(fd, node.mode);
      if (node.mtime) fs.futimesSync(fd, node.atime ?? node.mtime, node.mtime);
    } catch (e) {
      this.fail(this.writeError(e, file.rel));
      return;
    }
    this.closeCurrent();
  }

  closeCurrent(): void {
    const file = this.current;
    this.current = undefined;
    if (!file) return;
    try {
      fs.closeSync(file.fd);
    } catch (e) {
      this.fail(this.writeError(e, file.rel));
    }
  }

  makeParents(segs: string[]): void {
    let key = '';
    for (let i = 0; i < segs.length - 1; i++) {
      key = i === 0 ? (segs[0] as string) : `${key}/${segs[i] as string}`;
      this.makeDir(key);
    }
  }

  makeDir(rel: string): void {
    if (this.made.has(rel)) return;
    // Private while we fill it; the archive's mode is applied in finish().
    fs.mkdirSync(this.abs(rel), 0o700);
    this.made.add(rel);
  }

  abs(rel: string): string {
    return `${this.root}/${rel}`;
  }

  writeError(e: unknown, rel: string): CutoverError {
    if (e instanceof CutoverError) return e;
    const code = errnoCode(e);
    if (code === 'EEXIST' || code === 'ELOOP' || code === 'ENOTDIR') {
      // The tree map says this cannot happen in an empty private directory: something aliases.
      return unsafe(rel, `collides with an existing path on disk (${code})`, HINT_PATHS);
    }
    return fsError('write', this.abs(rel), e);
  }

  // ---- after the last entry ----

  finish(): ExtractResult {
    const stripped = this.stripCandidate();
    const rootDepth = stripped === null ? 0 : 1;
    this.checkLinks(stripped);
    try {
      if (stripped !== null) this.stripTop(stripped);
      this.applyDirMetadata(rootDepth);
    } catch (e) {
      throw e instanceof CutoverError ? e : fsError('finish unpacking into', this.root, e);
    }
    return {
      entries: this.entries,
      files: this.files,
      bytes: this.bytes,
      stripped,
      diskBytes: this.diskBytes,
      ...(this.record ? { record: this.recorded(stripped) } : {}),
    };
  }

  /** The tree as installed: paths after stripping, files with their size and sha256. */
  recorded(stripped: string | null): RecordedEntry[] {
    const out: RecordedEntry[] = [];
    for (const [rel, node] of this.tree) {
      const p = stripped === null ? rel : rel === stripped ? '' : rel.startsWith(`${stripped}/`) ? rel.slice(stripped.length + 1) : rel;
      if (p === '') continue;
      out.push({
        path: p,
        type: node.kind,
        mode: node.kind === 'symlink' ? 0o777 : node.mode,
        ...(node.kind === 'file' ? { size: node.size ?? 0, sha256: node.sha256 ?? '' } : {}),
        ...(node.target !== undefined ? { target: node.target } : {}),
      });
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** One top-level directory holding release.json, and nothing beside it. */
  stripCandidate(): string | null {
    const top = this.top;
    if (typeof top !== 'string') return null;
    if (this.tree.get(top)?.kind !== 'dir') return null;
    if (this.tree.get(`${top}/${MANIFEST}`)?.kind !== 'file') return null;
    return top;
  }

  /** Every link resolved through the final tree (entry-rules.ts checkLinkChains). */
  checkLinks(stripped: string | null): void {
    const rootDepth = stripped === null ? 0 : 1;
    const linked = this.linkedDir;
    const linkedKey = linked === null ? null : stripped === null ? linked : `${stripped}/${linked}`;
    const inLinked = (rel: string): boolean => linkedKey !== null && (rel === linkedKey || rel.startsWith(`${linkedKey}/`));
    const links = new Map<string, string>();
    for (const [rel, node] of this.tree) if (node.kind === 'symlink' && !inLinked(rel)) links.set(rel, node.target as string);
    checkLinkChains(links, { rootDepth, linked });
  }

  /** Move top/* up into root with renames: top → unique temp name, children up, remove temp. */
  stripTop(top: string): void {
    let tmp: string;
    do tmp = `.cutover-strip-${randomBytes(6).toString('hex')}`;
    while (this.tree.has(`${top}/${tmp}`));
    const tmpAbs = this.abs(tmp);
    fs.renameSync(this.abs(top), tmpAbs);
    for (const name of fs.readdirSync(tmpAbs)) fs.renameSync(`${tmpAbs}/${name}`, this.abs(name));
    fs.rmdirSync(tmpAbs);
  }

  /** Directory modes and mtimes last: creating their contents would have changed them. */
  applyDirMetadata(rootDepth: number): void {
    for (const [rel, node] of this.tree) {
      if (node.kind !== 'dir') continue;
      const final = rootDepth === 0 ? rel : rel.split('/').slice(rootDepth).join('/');
      if (final === '') continue;
      const abs = this.abs(final);
      fs.chmodSync(abs, node.mode);
      if (node.mtime) fs.utimesSync(abs, node.atime ?? node.mtime, node.mtime);
    }
  }
}

/** Linux reports the umask in /proc without the set-and-restore race of process.umask(). */
async function readUmask(): Promise<number | undefined> {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(await fs.promises.readFile('/proc/self/status', 'utf8'));
    return m?.[1] === undefined ? undefined : parseInt(m[1], 8);
  } catch {
    return undefined; // Not Linux: always fchmod.
  }
}

function kindOf(entry: ReadEntry): Kind | undefined {
  switch (entry.type) {
    case 'File':
      return 'file';
    case 'Directory':
      return 'dir';
    case 'SymbolicLink':
      return 'symlink';
    default:
      return undefined;
  }
}

/** node-tar's names for the header types a release may not have, as entry-rules.ts calls them. */
const TAR_TYPES: Record<string, string> = {
  Link: 'hardlink',
  CharacterDevice: 'chardev',
  BlockDevice: 'blockdev',
  FIFO: 'fifo',
};
