/**
 * Disk space for an update, worked out before anything is downloaded: what the release needs
 * (the download, plus its unpacked size when the index declares it), what the root's filesystem
 * has free minus a reserve, and which old releases to prune first when that is what makes it fit.
 * Pure: the caller measures, this decides.
 */
import semver from 'semver';
import type { Reserve } from '../config/size.ts';
import { CutoverError } from '../errors.ts';
import { formatBytes } from '../report.ts';

const GiB = 1024 ** 3;

export interface SpaceInput {
  version: string;
  root: string;
  /** Bytes free on the root's filesystem (statfs f_bavail × f_bsize). */
  free: number;
  /** Size of the filesystem, for a reserve given in percent. */
  total: number;
  reserve: Reserve | undefined;
  download: number;
  /** From the index's `unpacked_size`; undefined: only the download is counted up front. */
  unpacked: number | undefined;
  /** Releases that may go, with the space they occupy. Never current or previous. */
  prunable: Array<{ version: string; bytes: number }>;
  /** Releases the update prunes anyway afterwards: removed first. */
  prunedAnyway: string[];
}

export interface SpacePlan {
  reserve: number;
  need: number;
  available: number;
  /** Releases to remove before staging, in order. */
  prune: string[];
  /** Bytes extraction may write (after the download), for the extraction budget. */
  budget: number;
}

/** 5% of the filesystem or 1 GiB, whichever is smaller, unless the config says otherwise. */
export function reserveBytes(reserve: Reserve | undefined, total: number): number {
  if (!reserve) return Math.min(Math.floor(total * 0.05), GiB);
  if ('bytes' in reserve) return reserve.bytes;
  return Math.floor((total * reserve.percent) / 100);
}

export function planSpace(input: SpaceInput): SpacePlan {
  const reserve = reserveBytes(input.reserve, input.total);
  const need = input.download + (input.unpacked ?? 0);
  const available = Math.max(0, input.free - reserve);
  const order = [
    ...input.prunable.filter((r) => input.prunedAnyway.includes(r.version)),
    ...input.prunable.filter((r) => !input.prunedAnyway.includes(r.version)).sort((a, b) => semver.compare(a.version, b.version)),
  ];
  const prune: string[] = [];
  let freed = 0;
  for (const r of order) {
    if (need <= available + freed) break;
    prune.push(r.version);
    freed += r.bytes;
  }
  if (need > available + freed) {
    const parts =
      input.unpacked === undefined
        ? `the download of ${formatBytes(input.download)}`
        : `${formatBytes(need)} (download ${formatBytes(input.download)} + unpacked ${formatBytes(input.unpacked)})`;
    const pruneNote = order.length
      ? `; removing every release but current and previous would free only ${formatBytes(freed)}`
      : '; there are no old releases to remove';
    throw new CutoverError(
      'E_NO_SPACE',
      `not enough disk space under ${input.root} for v${input.version}: it needs ${parts}, the filesystem has ${formatBytes(input.free)} free minus a reserve of ${formatBytes(reserve)} = ${formatBytes(available)}${pruneNote}`,
      {
        hint: 'free space on that filesystem (or lower disk.reserve), then retry; nothing was changed',
        details: { need, download: input.download, unpacked: input.unpacked ?? null, free: input.free, reserve, available, prunable: freed },
      },
    );
  }
  return { reserve, need, available, prune, budget: Math.max(0, available + freed - input.download) };
}
