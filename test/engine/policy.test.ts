import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inWindow, parseWindow } from '../../src/config/window.ts';
import { decide } from '../../src/engine/policy.ts';
import type { ReleaseEntry } from '../../src/release/release-index.ts';

const rel = (version: string): ReleaseEntry => ({
  version,
  artifact: new URL(`https://x/${version}`),
  bundle: new URL(`https://x/${version}.json`),
  sha256: '0'.repeat(64),
  size: 1,
});
const releases = ['1.3.0', '1.3.1', '1.3.2', '1.4.0', '2.0.0', '2.1.0-rc.1'].map(rel);
const base = { current: '1.3.0', releases, bad: [], window: undefined, now: new Date() };

test('auto = patch installs the newest patch, leaves minor and major alone', () => {
  const d = decide({ ...base, auto: 'patch' });
  assert.equal(d.action, 'install');
  assert.equal(d.target?.version, '1.3.2');
  assert.equal(d.newest?.version, '2.0.0');
});

test('auto = minor and major go further; none never installs', () => {
  assert.equal(decide({ ...base, auto: 'minor' }).target?.version, '1.4.0');
  assert.equal(decide({ ...base, auto: 'major' }).target?.version, '2.0.0');
  const none = decide({ ...base, auto: 'none' });
  assert.equal(none.action, 'none');
  assert.match(none.reason, /v2\.0\.0 is available \(major update\)/);
});

test('a release marked bad is never retried; an older allowed one is not a fallback past it', () => {
  const d = decide({ ...base, auto: 'patch', bad: ['1.3.2'] });
  assert.equal(d.target?.version, '1.3.1');
  const both = decide({ ...base, auto: 'patch', bad: ['1.3.2', '1.3.1'] });
  assert.equal(both.action, 'none');
  assert.match(both.reason, /marked bad/);
});

test('never a downgrade, never a prerelease, nothing when up to date', () => {
  const d = decide({ ...base, current: '2.0.0', auto: 'major' });
  assert.equal(d.action, 'none');
  assert.match(d.reason, /newest release/);
  assert.equal(decide({ ...base, current: null, auto: 'major' }).action, 'none');
});

test('outside the maintenance window the update is held', () => {
  const window = parseWindow('Sun 02:00-04:00');
  assert.ok(window);
  const sunday3am = new Date(2026, 10, 22, 3, 0);
  const monday3am = new Date(2026, 10, 23, 3, 0);
  assert.equal(decide({ ...base, auto: 'patch', window, now: sunday3am }).action, 'install');
  const held = decide({ ...base, auto: 'patch', window, now: monday3am });
  assert.equal(held.action, 'hold');
  assert.equal(held.target?.version, '1.3.2');
});

test('windows: day lists, ranges, daily, wrapping midnight; nonsense rejected', () => {
  const w = parseWindow('Sat,Sun 22:00-02:00')!;
  assert.equal(inWindow(w, new Date(2026, 10, 21, 23, 0)), true); // Sat 23:00
  assert.equal(inWindow(w, new Date(2026, 10, 23, 1, 0)), true); // Mon 01:00 (Sunday's night)
  assert.equal(inWindow(w, new Date(2026, 10, 24, 1, 0)), false); // Tue 01:00
  const weekdays = parseWindow('Mon-Fri 01:30-03:00')!;
  assert.equal(inWindow(weekdays, new Date(2026, 10, 27, 2, 0)), true); // Fri
  assert.equal(inWindow(weekdays, new Date(2026, 10, 28, 2, 0)), false); // Sat
  assert.equal(inWindow(parseWindow('03:00-05:00')!, new Date(2026, 10, 25, 4, 59)), true);
  for (const bad of ['Funday 02:00-03:00', '25:00-26:00', '02:00-02:00', 'Sun', '2-4']) assert.equal(parseWindow(bad), undefined, bad);
});

test('migrations = "manual" (the default): a schema change or a path of stops is left to a manual update; "auto" takes them', () => {
  const schemaRel = [rel('1.3.0'), { ...rel('1.3.1'), schema: 2 }, { ...rel('1.3.2'), upgradeFrom: '>=1.3.1' }];
  const manual = decide({ ...base, releases: schemaRel, auto: 'patch', schema: 1 });
  assert.equal(manual.action, 'none');
  assert.match(manual.reason, /v1\.3\.2 needs upgrade stops \(it upgrades only from >=1\.3\.1\); daemon\.migrations = "manual" leaves it to `update` by hand/);
  const onlySchema = decide({ ...base, releases: schemaRel.slice(0, 2), auto: 'patch', schema: 1, migrations: 'manual' });
  assert.match(onlySchema.reason, /v1\.3\.1 changes the database schema \(1 -> 2\)/);
  assert.equal(decide({ ...base, releases: schemaRel.slice(0, 2), auto: 'patch', schema: 2 }).target?.version, '1.3.1', 'same schema: no change');
  assert.equal(decide({ ...base, releases: schemaRel, auto: 'patch', schema: 1, migrations: 'auto' }).target?.version, '1.3.2');
});
