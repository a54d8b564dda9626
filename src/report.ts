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

export const silentReporter: Reporter = {
  step() {},
  warn() {},
  progress() {},
};

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
