/**
 * Modules never print: they report through this interface. The CLI renders it as lines or a
 * progress bar on stderr; the daemon renders journal lines; tests collect it.
 */
export interface Reporter {
  /** A step of the plan started or finished ("download", "verify", ...). */
  step(message: string): void;
  /** Something the operator should notice but that does not stop the operation. */
  warn(message: string): void;
  /** Byte progress of a long transfer; total is undefined when unknown. */
  progress(label: string, done: number, total: number | undefined): void;
}

/** A reporter that remembers everything, for tests and --json summaries. */
export class RecordingReporter implements Reporter {
  readonly steps: string[] = [];
  readonly warnings: string[] = [];
  step(message: string): void {
    this.steps.push(message);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  progress(): void {}
}

/** 1536 → "1.5 KiB": sizes in messages and listings. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
