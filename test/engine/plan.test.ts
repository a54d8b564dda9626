import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commitIndex, planGc, planPrune, planRollback, planUpdate, type UpdateFacts } from '../../src/engine/plan.ts';
import { CutoverError } from '../../src/errors.ts';
import type { ReleaseEntry } from '../../src/release/release-index.ts';

const rel = (version: string, extra: Partial<ReleaseEntry> = {}): ReleaseEntry => ({
  version,
  artifact: new URL(`https://x/${version}.tgz`),
  bundle: new URL(`https://x/${version}.json`),
  sha256: '0'.repeat(64),
  size: 1,
  ...extra,
});
const base = {
  app: 'demo',
  root: '/opt/demo',
  previous: null,
  keep: 2,
  allowDowngrade: false,
  identity: 'https://id/v{version}',
  issuer: 'https://issuer',
  activation: { units: [], health: false },
  force: false,
} satisfies Partial<UpdateFacts>;
const kinds = (steps: Array<{ kind: string }>): string[] => steps.map((s) => s.kind);
const is = (code: string, exit: number) => (e: unknown) => e instanceof CutoverError && e.code === code && e.exitCode === exit;
const GiB = 1024 ** 3;

test('same version is a noop with no steps', () => {
  const p = planUpdate({ ...base, current: '1.4.0', installed: ['1.4.0'], release: rel('1.4.0') });
  assert.equal(p.action, 'noop');
  assert.deepEqual(p.prune, []);
  assert.deepEqual(p.steps, []);
});

test('a new version: fetch-bundle, verify, stage, install, switch, then prune beyond keep (never current or previous)', () => {
  const p = planUpdate({ ...base, current: '1.3.0', installed: ['1.3.0', '1.2.0', '1.1.0', '1.0.0'], release: rel('1.4.0') });
  assert.equal(p.action, 'install');
  assert.equal(p.rollbackTarget, '1.3.0');
  assert.deepEqual(p.prune, ['1.1.0', '1.0.0']);
  assert.deepEqual(kinds(p.steps), ['fetch-bundle', 'verify', 'stage', 'install', 'switch', 'prune']);
  assert.deepEqual(p.steps[1], { kind: 'verify', version: '1.4.0', sha256: '0'.repeat(64), identity: 'https://id/v{version}', issuer: 'https://issuer' });
  assert.deepEqual(p.steps[4], { kind: 'switch', from: '1.3.0', to: '1.4.0', previous: null });
  assert.equal(commitIndex(p.steps), 4, 'without units the switch commits');
});

test('with units and [health]: preflight first, restarts in order and the gate after the switch; the gate commits', () => {
  const p = planUpdate({
    ...base,
    activation: { units: ['a.service', 'b.service'], health: true },
    current: '1.3.0',
    previous: '1.2.0',
    installed: ['1.3.0', '1.2.0'],
    release: rel('1.4.0'),
  });
  assert.deepEqual(kinds(p.steps), ['preflight', 'fetch-bundle', 'verify', 'stage', 'install', 'switch', 'restart', 'restart', 'gate']);
  assert.deepEqual(
    p.steps.filter((s) => s.kind === 'restart').map((s) => (s as { unit: string }).unit),
    ['a.service', 'b.service'],
  );
  assert.deepEqual(p.steps[5], { kind: 'switch', from: '1.3.0', to: '1.4.0', previous: '1.2.0' });
  assert.equal(commitIndex(p.steps), 8);
});

test('a first install has no preflight (nothing is running) and nothing to prune', () => {
  const p = planUpdate({ ...base, activation: { units: ['a.service'], health: true }, current: null, installed: [], release: rel('1.0.0') });
  assert.deepEqual(kinds(p.steps), ['fetch-bundle', 'verify', 'stage', 'install', 'switch', 'restart', 'gate']);
  assert.equal(p.rollbackTarget, null);
});

test('a retained version is checked and switched to, without download', () => {
  const p = planUpdate({ ...base, current: '1.3.0', installed: ['1.4.0', '1.3.0'], release: rel('1.4.0') });
  assert.equal(p.action, 'switch');
  assert.deepEqual(kinds(p.steps), ['check-retained', 'switch']);
});

test('downgrade is refused with exit 3 unless allowed', () => {
  assert.throws(() => planUpdate({ ...base, current: '1.4.0', installed: ['1.4.0'], release: rel('1.3.0') }), is('E_DOWNGRADE', 3));
  const p = planUpdate({ ...base, allowDowngrade: true, current: '1.4.0', installed: ['1.4.0'], release: rel('1.3.0') });
  assert.equal(p.downgrade, true);
  assert.ok(kinds(p.steps).includes('switch'));
});

test('disk: when only pruning makes it fit, prune-before comes after verify and before stage; the stage gets the budget', () => {
  const disk = {
    free: 3 * GiB,
    total: 100 * GiB,
    reserve: { bytes: 1 * GiB },
    prunable: [
      { version: '1.0.0', bytes: 2 * GiB },
      { version: '1.1.0', bytes: 2 * GiB },
    ],
  };
  const p = planUpdate({
    ...base,
    keep: 5,
    current: '1.3.0',
    previous: '1.2.0',
    installed: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'],
    release: rel('1.4.0', { size: 1 * GiB, unpackedSize: 2 * GiB }),
    disk,
  });
  assert.deepEqual(kinds(p.steps), ['fetch-bundle', 'verify', 'prune-before', 'stage', 'install', 'switch']);
  assert.deepEqual(p.steps[2], { kind: 'prune-before', versions: ['1.0.0'], need: 3 * GiB, available: 2 * GiB, reserve: GiB });
  const stage = p.steps[3] as { budget: number; unpackedSize: number };
  assert.equal(stage.budget, 3 * GiB, 'free 3 GiB - reserve 1 GiB + 2 GiB freed - 1 GiB download');
  assert.equal(stage.unpackedSize, 2 * GiB);
});

test('disk: when nothing would make it fit, E_NO_SPACE (exit 6) before any step', () => {
  const disk = { free: 1 * GiB, total: 100 * GiB, reserve: { bytes: 1 * GiB }, prunable: [] };
  assert.throws(() => planUpdate({ ...base, current: '1.3.0', installed: ['1.3.0'], release: rel('1.4.0', { size: 10 }), disk }), is('E_NO_SPACE', 6));
});

test('rollback: to previous, or --to a retained one; refusals: no previous, not installed, already current', () => {
  const f = {
    current: '1.4.0',
    previous: '1.3.0',
    installed: ['1.2.0', '1.3.0', '1.4.0'],
    to: undefined,
    releasesDir: '/r',
    activation: { units: ['a.service'], health: true },
  };
  const p = planRollback(f);
  assert.equal(p.to, '1.3.0');
  assert.deepEqual(kinds(p.steps), ['check-retained', 'switch', 'restart', 'gate']);
  assert.equal(planRollback({ ...f, to: '1.2.0' }).to, '1.2.0');
  assert.throws(() => planRollback({ ...f, previous: null }), is('E_NO_PREVIOUS', 6));
  assert.throws(() => planRollback({ ...f, to: '0.9.0' }), is('E_NOT_INSTALLED', 6));
  assert.throws(() => planRollback({ ...f, to: '1.4.0' }), is('E_USAGE', 2));
});

test('prune keeps previous even at keep 0; the highest of the rest stay', () => {
  assert.deepEqual(planPrune({ installed: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'], current: '1.3.0', previous: '1.0.0', keep: 0 }), ['1.2.0', '1.1.0']);
  assert.deepEqual(planPrune({ installed: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'], current: '1.3.0', previous: '1.0.0', keep: 2 }), ['1.1.0']);
  assert.deepEqual(planGc({ installed: ['1.0.0', '1.3.0'], current: '1.3.0', previous: '1.0.0', keep: 0 }), []);
  assert.deepEqual(planGc({ installed: ['1.0.0', '1.1.0', '1.3.0'], current: '1.3.0', previous: '1.1.0', keep: 0 }), [{ kind: 'prune', versions: ['1.0.0'] }]);
});
