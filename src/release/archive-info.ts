/**
 * What a release archive says about itself, read without unpacking it: its release.json (at the
 * root or under one top directory) and the bytes its regular files add up to. For `release
 * verify` (the version in the identity) and `release index` (unpacked_size, schema, upgrade_from).
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { CutoverError, errnoCode, fsError } from '../errors.ts';

const MAX_MANIFEST_BYTES = 1 << 20;

export interface ArchiveInfo {
  manifest: Record<string, unknown>;
  unpackedSize: number;
}

export async function archiveInfo(file: string): Promise<ArchiveInfo> {
  let manifest: Record<string, unknown> | undefined;
  let problem: string | undefined;
  let unpacked = 0;
  const parser = new Parser({
    onReadEntry: (e: ReadEntry) => {
      if (e.type === 'File') unpacked += e.size;
      const segs = e.path.split('/').filter((s) => s !== '' && s !== '.');
      if (e.type === 'File' && segs.at(-1) === 'release.json' && segs.length <= 2 && manifest === undefined) {
        if (e.size > MAX_MANIFEST_BYTES) {
          problem = `its release.json is ${e.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`;
          e.resume();
          return;
        }
        const chunks: Buffer[] = [];
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => {
          try {
            const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
            if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new Error('not a JSON object');
            manifest = m as Record<string, unknown>;
          } catch (err) {
            problem = `its release.json is not valid: ${(err as Error).message}`;
          }
        });
        return;
      }
      e.resume();
    },
  });
  try {
    await pipeline(createReadStream(file), createGunzip(), parser);
  } catch (e) {
    const code = errnoCode(e);
    if (code && !code.startsWith('Z_') && !code.startsWith('TAR_')) throw fsError('read', file, e);
    throw new CutoverError('E_ARCHIVE_CORRUPT', `${file} is not a .tar.gz release archive: ${(e as Error).message}`, {
      hint: 'pack it with `cutover release pack`',
    });
  }
  if (problem) throw new CutoverError('E_RELEASE_MANIFEST', `${file}: ${problem}`, { hint: 'pack it with `cutover release pack`' });
  if (!manifest) throw new CutoverError('E_RELEASE_MANIFEST', `${file} has no release.json`, { hint: 'pack it with `cutover release pack`' });
  return { manifest, unpackedSize: unpacked };
}
