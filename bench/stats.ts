/** Small statistics and table rendering for the benchmark report. */

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function max(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? NaN : Math.max(...s);
}

export function min(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? NaN : Math.min(...s);
}

export const secs = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '-');
export const mib = (kib: number): string => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : '-');
export const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;

/** A plain-text table with right-aligned columns after the first. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}
