/** The planner's database decisions, on plain data: which steps, in which order, and every refusal. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commitIndex, planRestoreSteps, planRollback, planUpdate, type DataFacts, type UpdateFacts } from '../../src/engine/plan.ts';
import { planBackupPrune, protectedBy } from '../../src/database/retention.ts';
import { CutoverError } from '../../src/errors.ts';
import type { DataContract } from '../../src/release/manifest.ts';
import type { BackupRecord } from '../../src/state/state.ts';

const rel = (version: string) => ({
  version,
  artifact: new URL(`https://x/${version}.tgz`),
  bundle: new URL(`https://x/${version}.json`),
  sha256: '0'.repeat(64),
  size: 1,
});
const contract = (c: Partial<DataContract>): DataContract => ({
  schema: null,
  rollbackSafeSchema: null,
  migrate: null,
  migratePending: null,
  upgradeFrom: null,
  ...c,
});
const data = (d: Partial<DataFacts> = {}): DataFacts => ({
  target: contract({ schema: 2, rollbackSafeSchema: 2, migrate: ['bin/migrate'] }),
  db: { schema: 1, rollbackSafe: 1 },
  currentSchema: 1,
  configured: true,
  exists: true,
  when: 'schema',
  user: 'demo',
  backup: { id: 'B', file: 'B.db' },
  backups: [],
  backupKeep: 5,
  estimate: 0,
  ...d,
});
const facts = (d: Partial<DataFacts> = {}, extra: Partial<UpdateFacts> = {}): UpdateFacts => ({
  app: 'demo',
  root: '/opt/demo',
  current: '1.0.0',
  previous: null,
  installed: ['1.0.0'],
  release: rel('2.0.0'),
  keep: 2,
  allowDowngrade: false,
  identity: 'id',
  issuer: 'iss',
  activation: { units: ['a.service', 'b.service'], health: true },
  force: false,
  data: data(d),
  ...extra,
});
const kinds = (steps: Array<{ kind: string }>): string[] => steps.map((s) => s.kind);
const is = (code: string, exit: number) => (e: unknown) => e instanceof CutoverError && e.code === code && e.exitCode === exit;
const backup = (id: string, version: string): BackupRecord => ({
  id,
  version,
  schema: 1,
  rollbackSafe: 1,
  reason: 'update',
  created: '',
  file: `${id}.db`,
  bytes: 1,
  sha256: '',
});

test('a schema change: stop (reverse), backup, switch, migrate, start (in order), gate, record; the gate commits', () => {
  const p = planUpdate(facts());
  assert.deepEqual(kinds(p.steps), [
    'preflight',
    'fetch-bundle',
    'verify',
    'stage',
    'install',
    'stop',
    'backup',
    'switch',
    'migrate',
    'start',
    'start',
    'gate',
    'record-schema',
  ]);
  assert.deepEqual(p.steps[5], { kind: 'stop', units: ['b.service', 'a.service'] });
  assert.deepEqual(p.schema, { from: 1, to: 2 });
  assert.equal(p.steps[commitIndex(p.steps)]!.kind, 'gate');
  const b = p.steps.find((s) => s.kind === 'backup')!;
  assert.deepEqual(b, { kind: 'backup', id: 'B', file: 'B.db', version: '1.0.0', schema: 1, rollbackSafe: 1, reason: 'update', compatible: false });
});

test('without units: no stop, no start, no gate; the migration commits', () => {
  const p = planUpdate(facts({}, { activation: { units: [], health: false } }));
  assert.deepEqual(kinds(p.steps), ['fetch-bundle', 'verify', 'stage', 'install', 'backup', 'switch', 'migrate', 'record-schema']);
  assert.equal(p.steps[commitIndex(p.steps)]!.kind, 'migrate');
});

test('a release that migrates itself on start: no migrate step, its start records the schema', () => {
  const p = planUpdate(facts({ target: contract({ schema: 2, rollbackSafeSchema: 2 }) }));
  assert.ok(!kinds(p.steps).includes('migrate'));
  assert.equal(p.steps.at(-1)!.kind, 'record-schema');
  assert.equal((p.steps.at(-1) as { via: string }).via, 'start');
});

test('no schema change: the plain restart flow; a backup first only with when = "always"', () => {
  assert.deepEqual(kinds(planUpdate(facts({ target: contract({ schema: 1 }) })).steps).slice(5), ['switch', 'restart', 'restart', 'gate']);
  assert.deepEqual(kinds(planUpdate(facts({ target: contract({ schema: 1 }), when: 'always' })).steps).slice(5), [
    'backup',
    'switch',
    'restart',
    'restart',
    'gate',
  ]);
  assert.ok(!kinds(planUpdate(facts({ when: 'never' })).steps).includes('backup'));
});

test('an expand-only release (rollback_safe_schema covers the old schema): its backup is marked compatible', () => {
  const p = planUpdate(facts({ target: contract({ schema: 2, rollbackSafeSchema: 1, migrate: ['m'] }) }));
  assert.equal((p.steps.find((s) => s.kind === 'backup') as { compatible: boolean }).compatible, true);
});

test('refusals before anything changes: lower schema (5), migration without user (2), --no-restart (2)', () => {
  assert.throws(() => planUpdate(facts({ db: { schema: 3, rollbackSafe: 3 } })), is('E_SCHEMA_DOWNGRADE', 5));
  assert.throws(() => planUpdate(facts({ user: null })), is('E_CONFIG', 2));
  assert.throws(() => planUpdate(facts({}, { activation: { units: [], health: true, skipped: true } })), is('E_USAGE', 2));
  // An older schema the database still serves (rollback_safe_schema) is not a change.
  const p = planUpdate(facts({ db: { schema: 3, rollbackSafe: 2 } }));
  assert.ok(!kinds(p.steps).includes('migrate'));
});

test('a first install with a database file already there backs it up first, then migrates', () => {
  const p = planUpdate(facts({ db: null }, { current: null, installed: [], activation: { units: [], health: false } }));
  assert.deepEqual(kinds(p.steps), ['fetch-bundle', 'verify', 'stage', 'install', 'backup', 'switch', 'migrate', 'record-schema']);
  assert.equal((p.steps[4] as { reason: string }).reason, 'first-install');
});

test('rollback onto a schema the database has left: refused (3) naming the backup; --restore plans the restore; --ignore-schema switches only', () => {
  const base = {
    current: '2.0.0',
    previous: '1.0.0',
    installed: ['1.0.0', '2.0.0'],
    to: undefined,
    releasesDir: '/r',
    activation: { units: ['a.service'], health: true },
  };
  const d = {
    target: contract({ schema: 1 }),
    db: { schema: 2, rollbackSafe: 2 },
    configured: true,
    exists: true,
    backups: [backup('B1', '1.0.0')],
    restore: false,
    ignoreSchema: false,
    backup: { id: 'S', file: 'S.db' },
  };
  assert.throws(
    () => planRollback({ ...base, data: d }),
    (e: unknown) => is('E_ROLLBACK_SCHEMA', 3)(e) && /B1/.test((e as CutoverError).hint ?? ''),
  );
  const r = planRollback({ ...base, data: { ...d, restore: true } });
  assert.deepEqual(kinds(r.steps), ['check-retained', 'check-backup', 'stop', 'backup', 'restore', 'switch', 'start', 'gate', 'record-schema']);
  assert.deepEqual(kinds(planRollback({ ...base, data: { ...d, ignoreSchema: true } }).steps), ['check-retained', 'switch', 'restart', 'gate']);
  assert.throws(() => planRollback({ ...base, data: { ...d, restore: true, backups: [] } }), is('E_ROLLBACK_SCHEMA', 3));
  // Compatible (the newer release only expanded): a plain rollback.
  assert.deepEqual(kinds(planRollback({ ...base, data: { ...d, db: { schema: 2, rollbackSafe: 1 } } }).steps), ['check-retained', 'switch', 'restart', 'gate']);
});

test('backup retention: the newest backup of each retained release is protected; the others beyond keep go oldest first', () => {
  const all = [backup('a', '1.0.0'), backup('b', '1.0.0'), backup('c', '2.0.0'), backup('d', '3.0.0'), backup('e', '3.0.0')];
  assert.deepEqual(
    [...protectedBy(all, ['1.0.0', '3.0.0', '4.0.0'], '4.0.0')],
    [
      ['b', '1.0.0'],
      ['e', '3.0.0'],
    ],
  );
  assert.deepEqual(planBackupPrune(all, ['1.0.0', '3.0.0', '4.0.0'], '4.0.0', 1), ['a', 'c']);
  assert.deepEqual(planBackupPrune(all, ['1.0.0', '3.0.0', '4.0.0'], '4.0.0', 5), []);
});

test('compatibility is judged on the release switched back to, not on the database: after a compatible rollback it may be older', () => {
  // v1 (schema 1) runs on a database v2.1 left at schema 2; v3 (schema 3) only expands from 2: v1 cannot run on 3.
  const p = planUpdate(facts({ db: { schema: 2, rollbackSafe: 1 }, currentSchema: 1, target: contract({ schema: 3, rollbackSafeSchema: 2, migrate: ['m'] }) }));
  assert.equal((p.steps.find((s) => s.kind === 'backup') as { compatible: boolean }).compatible, false);
});

test('a schema change with nothing to put the data back marks the stop unguarded', () => {
  const stop = planUpdate(facts({ when: 'never' })).steps.find((s) => s.kind === 'stop') as { unguarded?: boolean };
  assert.equal(stop.unguarded, true);
  assert.equal((planUpdate(facts()).steps.find((s) => s.kind === 'stop') as { unguarded?: boolean }).unguarded, undefined);
});

test('a backup that cannot fit is refused before anything stops (E_BACKUP_FAILED, exit 6)', () => {
  assert.throws(() => planUpdate(facts({ estimate: 100, backupSpace: { dir: '/b', free: 150, reserve: 60 } })), is('E_BACKUP_FAILED', 6));
});

test('restoring a backup taken before any schema leaves no schema recorded', () => {
  const r = planRestoreSteps({
    from: '1.0.0',
    to: '0.9.0',
    previous: null,
    activation: { units: [], health: false },
    saved: { ...backup('B0', '0.9.0'), schema: null, rollbackSafe: null },
    safety: null,
    db: { schema: 1, rollbackSafe: 1 },
  });
  assert.deepEqual(r.steps.at(-1), { kind: 'record-schema', version: '0.9.0', schema: null, rollbackSafe: null, via: 'restore' });
});
