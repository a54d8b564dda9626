import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planPrune, planUpdate } from '../../src/engine/plan.ts';
import { CutoverError } from '../../src/errors.ts';
import type { ReleaseEntry } from '../../src/release/release-index.ts';

const rel = (version: string): ReleaseEntry => ({
  version,
  artifact: new URL(`https://x/${version}.tgz`),
  bundle: new URL(`https://x/${version}.json`),
  sha256: '0'.repeat(64),
  size: 1,
});
const base = { app: 'demo', root: '/opt/demo', previous: null, keep: 2, allowDowngrade: false };

test('same version is a noop', () => {
  const p = planUpdate({ ...base, current: '1.4.0', installed: ['1.4.0'], release: rel('1.4.0') });
  assert.equal(p.action, 'noop');
  assert.deepEqual(p.prune, []);
});

test('a new version installs and prunes beyond keep, never current or previous', () => {
  const p = planUpdate({ ...base, current: '1.3.0', installed: ['1.3.0', '1.2.0', '1.1.0', '1.0.0'], release: rel('1.4.0') });
  assert.equal(p.action, 'install');
  assert.equal(p.rollbackTarget, '1.3.0');
  assert.deepEqual(p.prune, ['1.1.0', '1.0.0']);
});

test('a retained version is switched to without download', () => {
  const p = planUpdate({ ...base, current: '1.3.0', installed: ['1.4.0', '1.3.0'], release: rel('1.4.0') });
  assert.equal(p.action, 'switch');
});

test('downgrade is refused with exit 3 unless allowed', () => {
  assert.throws(
    () => planUpdate({ ...base, current: '1.4.0', installed: ['1.4.0'], release: rel('1.3.0') }),
    (e: unknown) => e instanceof CutoverError && e.code === 'E_DOWNGRADE' && e.exitCode === 3,
  );
  const p = planUpdate({ ...base, allowDowngrade: true, current: '1.4.0', installed: ['1.4.0'], release: rel('1.3.0') });
  assert.equal(p.downgrade, true);
  assert.equal(p.action, 'install');
});

test('prune keeps the previous release even when it is the oldest', () => {
  assert.deepEqual(planPrune({ installed: ['2.0.0', '1.9.0', '1.8.0', '1.0.0'], current: '2.0.0', previous: '1.0.0', keep: 2 }), ['1.8.0']);
  assert.deepEqual(planPrune({ installed: ['2.0.0', '1.0.0'], current: '2.0.0', previous: '1.0.0', keep: 1 }), []);
});

test('keep 0 keeps current and previous only', () => {
  assert.deepEqual(planPrune({ installed: ['1.3.0', '1.2.0', '1.1.0', '1.0.0'], current: '1.3.0', previous: '1.2.0', keep: 0 }), ['1.1.0', '1.0.0']);
  assert.deepEqual(planPrune({ installed: ['1.3.0', '1.2.0', '1.1.0', '1.0.0'], current: '1.3.0', previous: '1.0.0', keep: 0 }), ['1.2.0', '1.1.0']);
  // No previous (e.g. after a fresh install): only current stays.
  assert.deepEqual(planPrune({ installed: ['1.3.0', '1.2.0'], current: '1.3.0', previous: null, keep: 0 }), ['1.2.0']);
  // keep 1 is the same as keep 0 once previous is there: previous counts among the kept.
  assert.deepEqual(planPrune({ installed: ['1.3.0', '1.2.0', '1.1.0'], current: '1.3.0', previous: '1.1.0', keep: 1 }), ['1.2.0']);
});

test('an update at keep 0 prunes all but the new current and the one it replaces', () => {
  const p = planUpdate({ ...base, keep: 0, current: '1.3.0', previous: '1.2.0', installed: ['1.3.0', '1.2.0', '1.1.0'], release: rel('1.4.0') });
  assert.deepEqual(p.prune, ['1.2.0', '1.1.0']);
  assert.equal(p.rollbackTarget, '1.3.0');
});
