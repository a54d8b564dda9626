import assert from 'node:assert/strict';
import { test } from 'node:test';
import { upgradePath } from '../../src/engine/upgrade-path.ts';
import { CutoverError } from '../../src/errors.ts';
import type { ReleaseEntry } from '../../src/release/release-index.ts';

const rel = (version: string, upgradeFrom?: string): ReleaseEntry => ({
  version,
  artifact: new URL(`https://x/${version}`),
  bundle: new URL(`https://x/${version}.json`),
  sha256: '0'.repeat(64),
  size: 1,
  ...(upgradeFrom ? { upgradeFrom } : {}),
});
const hops = (p: ReleaseEntry[]): string[] => p.map((r) => r.version);

test('a target the current version may reach is one hop', () => {
  assert.deepEqual(hops(upgradePath([rel('2.0.0', '>=1.4.0')], '1.4.2', rel('2.0.0', '>=1.4.0'))), ['2.0.0']);
  assert.deepEqual(hops(upgradePath([rel('2.0.0', '>=1.4.0')], null, rel('2.0.0', '>=1.4.0'))), ['2.0.0'], 'a first install needs no stops');
});

test('the newest release in the range that the current version reaches is the stop; those in between are skipped', () => {
  const all = [rel('1.3.0'), rel('1.4.0'), rel('1.4.1'), rel('1.5.0-rc.1'), rel('2.0.0', '>=1.4.0 <2.0.0')];
  assert.deepEqual(hops(upgradePath(all, '1.3.0', all[4]!)), ['1.4.1', '2.0.0']);
  assert.deepEqual(hops(upgradePath(all, '1.3.0', all[4]!, ['1.4.1'])), ['1.4.0', '2.0.0'], 'never a stop marked bad');
});

test('stops chain: each stop reached through its own range', () => {
  const all = [rel('1.0.0'), rel('1.4.0', '>=1.0.0'), rel('2.0.0', '>=1.4.0'), rel('2.5.0', '^2.0.0'), rel('3.0.0', '>=2.5.0')];
  assert.deepEqual(hops(upgradePath(all, '1.0.0', all[4]!)), ['1.4.0', '2.0.0', '2.5.0', '3.0.0']);
});

test('no chain reaches the target: E_UPGRADE_PATH (exit 5)', () => {
  const all = [rel('1.0.0'), rel('2.0.0', '>=1.5.0')];
  assert.throws(
    () => upgradePath(all, '1.0.0', all[1]!),
    (e: unknown) => e instanceof CutoverError && e.code === 'E_UPGRADE_PATH' && e.exitCode === 5 && /upgrades only from >=1\.5\.0/.test(e.message),
  );
});
