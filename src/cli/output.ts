import type { Reporter } from '../report.ts';
import { escapeControls } from '../text.ts';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  stream?: NodeJS.WriteStream;
}

/**
 * Renders a Reporter on stderr: a live progress bar when stderr is a TTY, plain lines otherwise.
 * stdout is reserved for results (the --json document, or `status`/`list` tables).
 */
export class TerminalReporter implements Reporter {
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly quiet: boolean;
  private barShown = false;
  private lastPlain = -1;
  private readonly prog: string;

  constructor(prog: string, opts: OutputOptions) {
    this.prog = prog;
    this.out = opts.stream ?? process.stderr;
    this.tty = this.out.isTTY === true && process.env.TERM !== 'dumb';
    this.quiet = opts.quiet;
  }

  step(message: string): void {
    if (this.quiet) return;
    this.clearBar();
    this.out.write(`${this.prog}: ${escapeControls(message)}\n`);
  }

  warn(message: string): void {
    this.clearBar();
    this.out.write(`${this.prog}: warning: ${escapeControls(message)}\n`);
  }

  progress(label: string, done: number, total: number | undefined): void {
    if (this.quiet) return;
    if (this.tty) {
      const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 40));
      const frac = total ? Math.min(1, done / total) : 0;
      const filled = Math.round(frac * width);
      const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
      const pct = total ? `${Math.floor(frac * 100)}%`.padStart(4) : '';
      this.out.write(`\r${label} [${bar}] ${pct} ${mib(done)}${total ? ` / ${mib(total)}` : ''}\x1b[K`);
      this.barShown = true;
      if (total && done >= total) this.clearBar();
      return;
    }
    // Plain output: a line per 25% of a transfer worth reporting, so logs stay short.
    if (!total || total < 4 << 20) return;
    const quarter = Math.floor((done / total) * 4);
    if (quarter > this.lastPlain) {
      this.lastPlain = quarter;
      this.out.write(`${this.prog}: ${label} ${quarter * 25}% (${mib(done)} of ${mib(total)})\n`);
    }
  }

  private clearBar(): void {
    if (this.barShown) {
      this.out.write('\r\x1b[K');
      this.barShown = false;
    }
  }
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}
