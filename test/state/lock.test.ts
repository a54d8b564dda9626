import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CutoverError } from '../../src/errors.ts';
import { acquireLock } from '../../src/state/lock.ts';

test('a second holder is refused with E_LOCKED naming the holder; release frees it', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'cutover-lock-')), 'lock');
  const a = acquireLock(file, 'update');
  assert.throws(
    () => acquireLock(file, 'rollback'),
    (e: unknown) => e instanceof CutoverError && e.code === 'E_LOCKED' && e.exitCode === 7 && e.message.includes(`pid ${process.pid}`),
  );
  a.release();
  acquireLock(file, 'rollback').release();
});

test('a SIGKILLed holder leaves no stale lock', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'cutover-lock-')), 'lock');
  const lockModule = new URL('../../src/state/lock.ts', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      '--input-type=module',
      '-e',
      `const { acquireLock } = await import(${JSON.stringify(lockModule)}); acquireLock(${JSON.stringify(file)}, 'update'); console.log('held'); setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  assert.throws(
    () => acquireLock(file, 'update'),
    (e: unknown) => e instanceof CutoverError && e.code === 'E_LOCKED',
  );
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('close', resolve));
  acquireLock(file, 'update').release();
});
