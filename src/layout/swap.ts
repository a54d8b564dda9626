import { randomBytes } from 'node:crypto';
import { readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { fsyncDir } from './durable.ts';
import { CURRENT_TMP_PREFIX, type Layout } from './paths.ts';

/**
 * Point `current` at releases/v<version> atomically: a new relative symlink beside it, then
 * rename(2) over the old one (what `mv -T` does). At every instant `current` is either the old
 * link or the new one; never missing, never half-written.
 */
export async function switchCurrent(layout: Layout, version: string): Promise<void> {
  const target = path.join('releases', `v${version}`);
  const tmp = path.join(layout.root, `${CURRENT_TMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await symlink(target, tmp);
  } catch (e) {
    throw fsError('create a symlink at', tmp, e);
  }
  try {
    await rename(tmp, layout.current);
  } catch (e) {
    await rm(tmp, { force: true });
    const code = errnoCode(e);
    if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new CutoverError('E_LAYOUT', `${layout.current} is a directory, not a symlink`, {
        hint: 'move that directory into releases/vX and replace it with a symlink (see docs/upgrading.md)',
        cause: e,
      });
    }
    throw fsError('switch', layout.current, e);
  }
  await fsyncDir(layout.root);
}

/** The version `current` points at, or null when there is no `current` yet. */
export async function readCurrent(layout: Layout): Promise<string | null> {
  let target: string;
  try {
    target = await readlink(layout.current);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') return null;
    if (code === 'EINVAL') {
      throw new CutoverError('E_LAYOUT', `${layout.current} is not a symlink`, {
        hint: 'move it into releases/vX and replace it with a symlink (see docs/upgrading.md)',
        cause: e,
      });
    }
    throw fsError('read', layout.current, e);
  }
  const resolved = path.resolve(layout.root, target);
  const rel = path.relative(layout.releases, resolved);
  const m = /^v([^/]+)$/.exec(rel);
  if (!m?.[1]) {
    throw new CutoverError('E_LAYOUT', `${layout.current} points at ${target}, outside ${layout.releases}`, {
      hint: 'point it at a directory under releases/ (or run `rollback --to vX`)',
    });
  }
  return m[1];
}

/** Remove the `current` link (undoing a first install that nothing ran yet). */
export async function removeCurrent(layout: Layout): Promise<void> {
  try {
    await rm(layout.current, { force: true });
  } catch (e) {
    throw fsError('remove', layout.current, e);
  }
  await fsyncDir(layout.root);
}
