import { inspect } from 'node:util';
import { CutoverError, type ExitCode } from '../errors.ts';
import { escapeControls, escapeDeep } from '../text.ts';

/**
 * The one place that turns an outcome into an exit code and the one line an operator reads.
 * Anything that is not a CutoverError is a bug: E_INTERNAL, with the stack under --verbose.
 */
export function reportFailure(
  e: unknown,
  opts: { prog: string; json: boolean; verbose: boolean; stderr?: NodeJS.WritableStream; stdout?: NodeJS.WritableStream },
): ExitCode {
  const stderr = opts.stderr ?? process.stderr;
  const stdout = opts.stdout ?? process.stdout;
  const err =
    e instanceof CutoverError
      ? e
      : new CutoverError('E_INTERNAL', `internal error: ${(e as Error)?.message ?? String(e)}`, {
          hint: 'this is a bug in cutover; rerun with --verbose and report the output',
          cause: e,
        });
  // Messages can carry text from outside (a server, the index): nothing raw reaches the terminal.
  stderr.write(`${opts.prog}: ${escapeControls(err.toLine())}\n`);
  if (opts.verbose) {
    const cause = err.cause ?? err;
    stderr.write(`${(cause instanceof Error ? (cause.stack ?? cause.message) : inspect(cause)).split('\n').map(escapeControls).join('\n')}\n`);
  }
  if (opts.json) {
    stdout.write(
      `${JSON.stringify(escapeDeep({ ok: false, error: { code: err.code, exit: err.exitCode, message: err.message, hint: err.hint ?? null, ...(err.details ? { details: err.details } : {}) } }))}\n`,
    );
  }
  return err.exitCode;
}
