import { spawnSync } from 'node:child_process';
import { commandEnv } from '../system/commands.ts';
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsError } from '../errors.ts';

/** fsync a directory so a rename or create inside it survives power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write a file the write-file-atomic way: temp in the same dir, fsync, rename, fsync the dir. */
export async function writeFileAtomic(file: string, data: string, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await fsyncDir(dir);
  } catch (e) {
    await rm(tmp, { force: true });
    throw fsError('write', file, e);
  }
}

/**
 * Flush everything written to the filesystem holding `dir` (syncfs(2), through `sync -f`): one
 * call instead of an fsync per file for a tree of thousands of files.
 */
export function syncFilesystem(dir: string): void {
  const r = spawnSync('sync', ['-f', dir], { stdio: ['ignore', 'ignore', 'pipe'], env: commandEnv() });
  if (r.error || r.status !== 0) {
    throw fsError('sync', dir, r.error ?? new Error(r.stderr.toString().trim() || `sync exited ${r.status}`));
  }
}
