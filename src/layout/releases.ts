import { lstat, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import semver from 'semver';
import { errnoCode, fsError } from '../errors.ts';
import { type Layout, releaseDir } from './paths.ts';
import { ensurePrivateDir } from './trusted-path.ts';

/** Installed releases (directories named v<semver> under releases/), newest first. */
export async function listInstalled(layout: Layout): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(layout.releases);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw fsError('list', layout.releases, e);
  }
  const out: string[] = [];
  for (const name of names) {
    const m = /^v(.+)$/.exec(name);
    const v = m?.[1] && semver.valid(m[1]);
    if (!v || v !== m?.[1]) continue;
    const st = await lstat(path.join(layout.releases, name)).catch(() => null);
    if (st?.isDirectory()) out.push(v);
  }
  return out.sort(semver.rcompare);
}

export async function isInstalled(layout: Layout, version: string): Promise<boolean> {
  const st = await lstat(releaseDir(layout, version)).catch(() => null);
  return st?.isDirectory() ?? false;
}

/**
 * Remove a release without ever leaving a half-deleted one in releases/: rename it into the
 * trash first (atomic), then delete the trash copy.
 */
export async function removeRelease(layout: Layout, version: string): Promise<void> {
  ensurePrivateDir(layout.trash);
  const dest = path.join(layout.trash, `v${version}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(releaseDir(layout, version), dest);
  } catch (e) {
    throw fsError('remove', releaseDir(layout, version), e);
  }
  await rm(dest, { recursive: true, force: true });
}

/** Space a tree occupies on disk (allocated blocks, not apparent sizes), without following links. */
export async function diskUsage(dir: string): Promise<number> {
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const ent of entries) {
      const p = path.join(d, ent.name);
      const st = await lstat(p).catch(() => null);
      if (!st) continue;
      bytes += st.blocks * 512;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return bytes;
}

/** Directory sizes for `list`, counted without following links. */
export async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const ent of entries) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else {
        const st = await lstat(p).catch(() => null);
        if (st) {
          files++;
          bytes += st.size;
        }
      }
    }
  };
  await walk(dir);
  return { files, bytes };
}
