/**
 * Hard ceilings for unpacking one release archive. An archive that exceeds any of them is
 * refused with E_ARCHIVE_LIMIT as soon as the excess is seen, before it fills the disk.
 */
export interface ExtractLimits {
  /** Entries of any type (files, directories, symlinks), not counting pax/GNU meta headers. */
  maxEntries: number;
  /** Bytes in any one regular file. */
  maxFileBytes: number;
  /** Bytes in all regular files together (the unpacked size). */
  maxTotalBytes: number;
  /** UTF-8 bytes in one entry's path, and in one symlink's target. */
  maxPathBytes: number;
  /** Path segments in one entry's path (`a/b/c` is 3). */
  maxDepth: number;
}

const GiB = 1024 ** 3;

const DEFAULT_LIMITS: Readonly<ExtractLimits> = Object.freeze({
  maxEntries: 1_000_000,
  maxFileBytes: 8 * GiB,
  maxTotalBytes: 32 * GiB,
  maxPathBytes: 4096,
  maxDepth: 64,
});

/** Fill in defaults; a limit that is not a positive number is a programming error. */
export function resolveLimits(overrides: Partial<ExtractLimits> = {}): ExtractLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof ExtractLimits>) {
    const v = overrides[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v > 0)) {
      throw new TypeError(`extract limit ${key} must be a positive number, got ${String(v)}`);
    }
    limits[key] = v;
  }
  return limits;
}
