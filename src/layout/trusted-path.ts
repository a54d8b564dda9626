/**
 * No local user may steer root: like sshd's StrictModes, every directory cutover writes into as
 * root, and every directory above it up to `/`, must be owned by root (or by the user cutover
 * runs as) and writable by nobody else. A root-owned sticky directory (`/tmp`) is fine as a
 * parent. Paths are checked as the kernel resolves them: a symlink on the way must itself be
 * owned by root, and its target is checked in turn, so `/opt -> /data/opt` passes when
 * `/data` and `/data/opt` do.
 *
 * Every function here only reads (lstat/readlink) or works on cutover's own private
 * directories; nothing follows a link that someone else could have planted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CutoverError, errnoCode, fsError } from '../errors.ts';

const MAX_LINKS = 40;

export interface TrustOptions {
  /** The final directory may itself be a root-owned sticky one (a TMPDIR such as /tmp). */
  allowStickyFinal?: boolean;
  /** What the path is, for the message ("install root", "config file"). */
  what?: string;
  /** A missing tail is fine (it is about to be created); the existing part is checked. */
  allowMissing?: boolean;
  /** The hint to give instead of the chown/chmod advice. */
  fix?: string;
}

const euid = (): number => process.geteuid?.() ?? 0;

/** Who may own what root relies on: root, and the user cutover itself runs as. */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === euid();
}

function unsafePath(p: string, problem: string, what: string | undefined, fix: string, override?: string): CutoverError {
  return new CutoverError('E_UNSAFE_PATH', `${what ? `${what} ` : ''}${p} ${problem}, so another user could steer cutover`, {
    hint: override ?? fix,
    details: { path: p },
  });
}

function checkDir(p: string, st: fs.Stats, final: boolean, opts: TrustOptions): void {
  if (!trustedOwner(st.uid)) {
    throw unsafePath(p, `is owned by uid ${st.uid}, not root`, opts.what, `make it root's: chown root:root ${p} (and chmod go-w ${p})`, opts.fix);
  }
  if ((st.mode & 0o022) === 0) return;
  const sticky = (st.mode & 0o1000) !== 0 && st.uid === 0;
  if (sticky && (!final || opts.allowStickyFinal)) return;
  const who = st.mode & 0o002 ? 'everyone' : 'its group';
  throw unsafePath(p, `is writable by ${who} (mode ${octal(st.mode)})`, opts.what, `remove the write bits: chmod go-w ${p}`, opts.fix);
}

/**
 * Check directory `dir` (absolute) and everything it resolves through. Throws E_UNSAFE_PATH.
 * Returns the real path when it exists.
 */
export function checkTrustedDir(dir: string, opts: TrustOptions = {}): string | undefined {
  return walk(dir, opts, 'dir');
}

/** Check a file root relies on (the config): the file, and the directories leading to it. */
export function checkTrustedFile(file: string, opts: TrustOptions = {}): void {
  walk(file, opts, 'file');
}

function walk(start: string, opts: TrustOptions, kind: 'dir' | 'file'): string | undefined {
  if (!path.isAbsolute(start)) throw new TypeError(`not an absolute path: ${start}`);
  let todo = start.split('/').filter((s) => s !== '' && s !== '.');
  let cur = '/';
  let links = 0;
  const lst = (p: string): fs.Stats | undefined => {
    try {
      return fs.lstatSync(p);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw fsError('inspect', p, e);
    }
  };
  const rootSt = lst('/');
  if (rootSt) checkDir('/', rootSt, todo.length === 0 && kind === 'dir', opts);
  while (todo.length > 0) {
    const seg = todo.shift() as string;
    if (seg === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, seg);
    const st = lst(next);
    const final = todo.length === 0;
    if (!st) {
      if (opts.allowMissing) return undefined;
      throw fsError('find', next, Object.assign(new Error('no such file or directory'), { code: 'ENOENT' }));
    }
    if (st.isSymbolicLink()) {
      if (!trustedOwner(st.uid)) {
        throw unsafePath(next, `is a symlink owned by uid ${st.uid}`, opts.what, `replace it with a root-owned link or the real path`, opts.fix);
      }
      if (++links > MAX_LINKS) throw unsafePath(next, 'is part of a symlink loop', opts.what, 'fix the links', opts.fix);
      const target = fs.readlinkSync(next);
      todo = target
        .split('/')
        .filter((s) => s !== '' && s !== '.')
        .concat(todo);
      if (target.startsWith('/')) cur = '/';
      continue;
    }
    if (final && kind === 'file') {
      if (!st.isFile()) throw unsafePath(next, 'is not a regular file', opts.what, 'point cutover at a regular file', opts.fix);
      if (!trustedOwner(st.uid)) {
        throw unsafePath(next, `is owned by uid ${st.uid}, not root`, opts.what, `chown root:root ${next} && chmod go-w ${next}`, opts.fix);
      }
      if (st.mode & 0o022) {
        throw unsafePath(next, `is writable by group or others (mode ${octal(st.mode)})`, opts.what, `chmod go-w ${next}`, opts.fix);
      }
      return next;
    }
    if (!st.isDirectory()) {
      throw new CutoverError('E_LAYOUT', `${next} is not a directory`, { hint: 'move it aside; cutover needs a directory there' });
    }
    checkDir(next, st, final, opts);
    cur = next;
  }
  return cur;
}

export interface PrivateDirResult {
  /** A link or other non-directory someone left at the path was removed (its target untouched). */
  removedPlanted: string | undefined;
}

/**
 * Make `dir` a directory of ours, mode 0700, whose parent is already trusted. A symlink or
 * file planted there is removed (never followed: its target stays as it was); a directory owned
 * by someone else is refused.
 */
export function ensurePrivateDir(dir: string): PrivateDirResult {
  let removedPlanted: string | undefined;
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw fsError('inspect', dir, e);
  }
  if (st && !st.isDirectory()) {
    removedPlanted = st.isSymbolicLink() ? `${dir} -> ${safeReadlink(dir)}` : dir;
    try {
      fs.unlinkSync(dir);
    } catch (e) {
      throw fsError('remove the planted', dir, e);
    }
    st = undefined;
  }
  if (!st) {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      throw fsError('create', dir, e);
    }
    return { removedPlanted };
  }
  if (!trustedOwner(st.uid)) {
    throw unsafePath(dir, `is owned by uid ${st.uid}`, undefined, `remove it (rm -rf ${dir}); cutover recreates it`);
  }
  if ((st.mode & 0o7777) !== 0o700) fs.chmodSync(dir, 0o700);
  return { removedPlanted };
}

/**
 * Empty a private directory of ours without following anything: entries are removed as what
 * they are (a link is unlinked, never followed). When the directory itself is a planted link,
 * only the link goes. Returns what was removed.
 */
export function emptyPrivateDir(dir: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw fsError('inspect', dir, e);
  }
  if (!st.isDirectory()) {
    fs.unlinkSync(dir);
    return [st.isSymbolicLink() ? `${dir} (a symlink to ${safeReadlink(dir)}, removed without following it)` : dir];
  }
  if (!trustedOwner(st.uid)) {
    throw unsafePath(dir, `is owned by uid ${st.uid}`, undefined, `remove it (rm -rf ${dir}); cutover recreates it`);
  }
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    // fs.rm works on lstat: a symlink is removed itself, and recursion never crosses one.
    fs.rmSync(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
}

function safeReadlink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '?';
  }
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;
