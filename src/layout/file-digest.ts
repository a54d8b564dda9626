/** SHA-256 and size of a file, read through one reused 1 MiB buffer (never the whole file in memory). */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { fsError } from '../errors.ts';

export async function fileDigest(file: string): Promise<{ digest: Buffer; sha256: string; bytes: number }> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((e: unknown) => {
    throw fsError('read', file, e);
  });
  try {
    const hash = createHash('sha256');
    // A buffer the size of the file, up to a MiB: thousands of small files cost no big allocations.
    const { size } = await fh.stat();
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(size + 1, 1 << 20)));
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    const digest = hash.digest();
    return { digest, sha256: digest.toString('hex'), bytes };
  } finally {
    await fh.close();
  }
}
