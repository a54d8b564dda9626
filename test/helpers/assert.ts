import assert from 'node:assert/strict';
import { CutoverError, type ErrorCode } from '../../src/errors.ts';

function expectCode(e: unknown, code: ErrorCode): CutoverError {
  assert.ok(e instanceof CutoverError, `expected a CutoverError, got ${String(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  assert.ok(e.hint, 'every error carries a hint');
  return e;
}

/** Run `run`, expect it to throw a CutoverError with `code` (and a hint); return the error. */
export function rejects(code: ErrorCode, run: () => unknown): CutoverError {
  try {
    run();
  } catch (e) {
    return expectCode(e, code);
  }
  assert.fail(`expected ${code}, but it passed`);
}

/** The same for a promise. */
export async function rejectsAsync(code: ErrorCode, run: () => Promise<unknown>): Promise<CutoverError> {
  try {
    await run();
  } catch (e) {
    return expectCode(e, code);
  }
  assert.fail(`expected ${code}, but it passed`);
}
