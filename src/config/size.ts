const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
};

/** "1KiB", "512 MiB", "2GB", "4096" → bytes; undefined when not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  if (!m?.[1]) return undefined;
  const unit = UNITS[(m[2] ?? '').toUpperCase()];
  if (unit === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A reserve is either a share of the filesystem ("5%") or an absolute size ("1GiB"). */
export type Reserve = { percent: number } | { bytes: number };

export function parseReserve(text: string): Reserve | undefined {
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(text.trim());
  if (pct?.[1]) {
    const p = Number(pct[1]);
    return p >= 0 && p <= 50 ? { percent: p } : undefined;
  }
  const bytes = parseSize(text);
  return bytes === undefined ? undefined : { bytes };
}
