/**
 * The rules every release entry must pass, in one place: the extractor applies them to each
 * header before anything is written, and `cutover release pack` applies them to each file of a
 * build directory before anything is archived, with the same codes and messages. A vendor whose
 * `pack` succeeds ships an archive that `update` accepts.
 */
import path from 'node:path';
import { CutoverError } from '../errors.ts';
import type { ExtractLimits } from './limits.ts';

export const HINT_PATHS = 'do not install this archive; release entries must be relative paths inside the release root — tell the vendor';
export const HINT_OWNER = 'rebuild the archive with `tar --owner=0 --group=0 --numeric-owner`';
const HINT_MODE = 'rebuild the archive without setuid/setgid/sticky bits or group/world-writable modes (e.g. `chmod -R go-w,-s,-t` first)';
export const HINT_TYPE = 'releases may contain only regular files, directories and symlinks; rebuild the archive without hardlinks, devices, FIFOs or sockets';
export const HINT_LINK = 'symlinks in a release must be relative and stay inside the release; rebuild the archive without that link';
const HINT_LIMIT = 'check that this is the right artifact; a release this large is refused to protect the disk';

export type Kind = 'file' | 'dir' | 'symlink';

const q = (p: string): string => JSON.stringify(p);

export function unsafe(entry: string, problem: string, hint: string): CutoverError {
  return new CutoverError('E_ARCHIVE_UNSAFE', `archive entry ${q(entry)} ${problem}`, { hint, details: { entry } });
}

export function limit(entry: string | undefined, problem: string, details: Record<string, unknown>, hint = HINT_LIMIT): CutoverError {
  const msg = entry === undefined ? `archive ${problem}` : `archive entry ${q(entry)} ${problem}`;
  return new CutoverError('E_ARCHIVE_LIMIT', msg, { hint, details: { entry, ...details } });
}

type PathLimits = Pick<ExtractLimits, 'maxPathBytes' | 'maxDepth'>;

/** A relative path inside the release: its segments (empty for the root itself). */
export function checkEntryPath(raw: string, limits: PathLimits): string[] {
  if (Buffer.byteLength(raw) > limits.maxPathBytes) {
    throw limit(raw, `has a path longer than ${limits.maxPathBytes} bytes`, { maxPathBytes: limits.maxPathBytes });
  }
  if (raw.includes('\0')) throw unsafe(raw, 'has a NUL byte in its path', HINT_PATHS);
  if (raw.includes('\\')) throw unsafe(raw, 'has a backslash in its path', HINT_PATHS);
  if (raw.startsWith('/')) throw unsafe(raw, 'has an absolute path', HINT_PATHS);
  const segs = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) throw unsafe(raw, 'has a ".." path segment', HINT_PATHS);
  if (segs.length > limits.maxDepth) {
    throw limit(raw, `is nested deeper than ${limits.maxDepth} directories`, { maxDepth: limits.maxDepth });
  }
  return segs;
}

/** What a type that is not a file, directory or symlink is called in the refusal. */
export function refuseType(raw: string, what: string): never {
  const names: Record<string, string> = {
    hardlink: 'is a hardlink',
    chardev: 'is a character device',
    blockdev: 'is a block device',
    fifo: 'is a FIFO',
    socket: 'is a socket',
  };
  throw unsafe(raw, names[what] ?? `has unsupported type ${what}`, HINT_TYPE);
}

/** Bits no release entry may carry (setuid, setgid, sticky). */
export function checkSpecialBits(raw: string, mode: number): void {
  if (mode & 0o7000) throw unsafe(raw, `has setuid/setgid/sticky mode ${octal(mode)}`, HINT_MODE);
}

/** Extraction refuses group/world-writable entries (an archive that has them was not built for this). */
export function checkWritableBits(raw: string, mode: number): void {
  if (mode & 0o022) throw unsafe(raw, `is group- or world-writable (mode ${octal(mode)})`, HINT_MODE);
}

/** Lexical check: the target, taken relative to the link's directory, stays inside the release root. */
export function checkLinkTarget(raw: string, rel: string, target: string, maxPathBytes: number): string {
  if (target === '') throw unsafe(raw, 'is a symlink with an empty target', HINT_LINK);
  if (Buffer.byteLength(target) > maxPathBytes) {
    throw limit(raw, `has a symlink target longer than ${maxPathBytes} bytes`, { maxPathBytes });
  }
  if (target.includes('\0') || target.includes('\\')) {
    throw unsafe(raw, `is a symlink with a NUL or backslash in its target ${q(target)}`, HINT_LINK);
  }
  if (target.startsWith('/')) throw unsafe(raw, `is a symlink to the absolute path ${q(target)}`, HINT_LINK);
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw unsafe(raw, `is a symlink to ${q(target)}, outside the release`, HINT_LINK);
  }
  return target;
}

/** Symlink expansions while checking where a link finally points (like the kernel's 40). */
const MAX_LINK_HOPS = 40;

/** Case- and Unicode-folded form, so a case-insensitive filesystem cannot alias a symlink. */
export const fold = (p: string): string => p.normalize('NFD').toLowerCase().toUpperCase();

/**
 * Follow every symlink (path → target, relative to the tree's top) the way the kernel would,
 * expanding links met on the way, and refuse any that can leave the release root or loops: the
 * lexical check per entry (checkLinkTarget) cannot see chains like `d/up -> ..` plus
 * `x -> d/up/../y`. `rootDepth` is 1 when the tree's top directory is stripped on install.
 *
 * The linked directory (`runtime`) is modelled as what it becomes on install: a link to
 * ROOT/runtime. Whatever the archive holds there is replaced, so the caller leaves its entries
 * out; a path may go down into it (`log -> runtime/log`) but a `..` that would climb out of it
 * leads to ROOT, not back into the release (`esc -> runtime/../.cutover` is refused).
 */
export function checkLinkChains(links: ReadonlyMap<string, string>, opts: { rootDepth: number; linked: string | null }): void {
  const { rootDepth, linked } = opts;
  for (const [rel, target] of links) {
    const stack = rel.split('/');
    stack.pop();
    let todo = target.split('/');
    let hops = 0;
    /** Segments below the linked directory once the path has entered it; -1: not in it. */
    let below = -1;
    while (todo.length > 0) {
      const seg = todo.shift() as string;
      if (seg === '' || seg === '.') continue;
      if (seg === '..') {
        if (below === 0) {
          throw unsafe(
            rel,
            `is a symlink to ${q(target)}, which climbs out of ${linked as string}/ (a link to ROOT/${linked as string} once installed)`,
            HINT_LINK,
          );
        }
        if (below > 0) {
          below--;
          stack.pop();
          continue;
        }
        if (stack.length <= rootDepth) {
          throw unsafe(rel, `is a symlink to ${q(target)}, which leads outside the release`, HINT_LINK);
        }
        stack.pop();
        continue;
      }
      stack.push(seg);
      if (below >= 0) {
        // The operator's directory: nothing the archive says about it applies.
        below++;
        continue;
      }
      if (linked !== null && stack.length === rootDepth + 1 && seg === linked) {
        below = 0;
        continue;
      }
      const next = links.get(stack.join('/'));
      if (next === undefined) continue;
      if (++hops > MAX_LINK_HOPS) throw unsafe(rel, `is a symlink to ${q(target)} in a symlink loop`, HINT_LINK);
      stack.pop();
      todo = next.split('/').concat(todo);
    }
  }
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;
