/**
 * The order of a schema-changing update and what its undo does, in-process: real HTTPS, bundles,
 * tar, SQLite and a real account for the migration; fake service manager, health probe and clock.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { runUpdate } from '../../src/engine/update.ts';
import { CutoverError } from '../../src/errors.ts';
import { createAccount, removeAccount } from '../helpers/accounts.ts';
import { fakeServices, type FakeServices } from '../helpers/engine-fakes.ts';
import { sqliteMigration } from '../helpers/sqlite-migration.ts';
import { World } from '../helpers/world.ts';

const haveSqlite = spawnSync('sqlite3', ['-version']).status === 0;

const migrate = (schema: number, sql: string): string => sqliteMigration(schema, sql);

describe('schema-changing updates around the units (in-process, fake systemd)', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let base: Config;
  let config: Config;
  let s: FakeServices;
  let n = 0;
  const db = (): string => path.join(config.root, 'runtime', 'data', 'demo.db');
  const sql = (q: string): string => spawnSync('sqlite3', [db(), q], { encoding: 'utf8' }).stdout.trim();
  const update = (version: string) => runUpdate(config, s, { version, dryRun: false, allowDowngrade: false, signal: new AbortController().signal });

  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    w.writeConfig({
      keep: 5,
      top: `user = "${account}"\n[service]\nunits = ["a.service", "b.service"]\n\n[health]\nurl = "http://127.0.0.1:9/health"\n\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n`,
    });
    base = await loadConfig(w.configFile);
    await w.publish('1.0.0', { files: { 'bin/migrate': migrate(1, 'CREATE TABLE notes(body TEXT)') }, manifest: { schema: 1, migrate: ['bin/migrate'] } });
    await w.publish('2.0.0', {
      files: { 'bin/migrate': migrate(2, 'ALTER TABLE notes ADD COLUMN tag TEXT') },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    await w.publish('2.2.0', { files: { 'bin/demo': '#!/bin/sh\n' }, manifest: { schema: 2, rollback_safe_schema: 1 } });
    await w.publish('2.1.0', {
      files: { 'bin/migrate': migrate(2, 'ALTER TABLE notes ADD COLUMN tag TEXT') },
      manifest: { schema: 2, rollback_safe_schema: 1, migrate: ['bin/migrate'] },
    });
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });
  beforeEach(async () => {
    const root = path.join(w.dir, `root-${++n}`);
    config = {
      ...base,
      root,
      backup: { ...base.backup, dir: path.join(root, 'backups') },
      database: { kind: 'sqlite', path: path.join(root, 'runtime', 'data', 'demo.db') },
    };
    s = fakeServices(config.root, w.caFile);
    await update('1.0.0');
    sql("INSERT INTO notes VALUES ('v1 data')");
    s = fakeServices(config.root, w.caFile);
  });

  test('stop in reverse order, back up, switch, migrate, start in order, gate, record', async () => {
    const r = await update('2.0.0');
    assert.deepEqual(
      r.steps.map((x) => x.kind),
      ['preflight', 'fetch-bundle', 'verify', 'stage', 'install', 'stop', 'backup', 'switch', 'migrate', 'start', 'start', 'gate', 'record-schema'],
    );
    assert.deepEqual(s.serviceManager.calls, ['stop b.service', 'stop a.service', 'start a.service@2.0.0', 'start b.service@2.0.0']);
    assert.equal(sql('PRAGMA user_version'), '2');
  });

  test('a failed gate after the migration: stop, restore, switch back, start, gate; what v2 wrote is discarded (exit 8)', async () => {
    s.health.unhealthy.add('2.0.0');
    const before = sql('.dump');
    await assert.rejects(update('2.0.0'), (e: unknown) => {
      assert.ok(e instanceof CutoverError);
      assert.equal(e.exitCode, 8);
      assert.match(e.message, /restored the database from backup \S+ \(what v2\.0\.0 wrote while it ran was discarded\)/);
      assert.match(e.message, /started a\.service, b\.service on v1\.0\.0, which is healthy again/);
      return true;
    });
    assert.deepEqual(s.serviceManager.calls, [
      'stop b.service',
      'stop a.service',
      'start a.service@2.0.0',
      'start b.service@2.0.0',
      // The starts undone (they ran the new code), then the backup's undo stops every unit again
      // (one a dependency pulled up too) before the restore, then the stop's undo brings v1 back.
      'stop b.service',
      'stop a.service',
      'stop b.service',
      'stop a.service',
      'restart a.service@1.0.0',
      'restart b.service@1.0.0',
    ]);
    assert.equal(sql('.dump'), before);
    assert.equal(readlinkSync(path.join(config.root, 'current')), 'releases/v1.0.0');
  });

  test('a failed gate when the new release only expanded the schema: no restore, the old release runs on it', async () => {
    s.health.unhealthy.add('2.1.0');
    await assert.rejects(update('2.1.0'), (e: unknown) => {
      assert.ok(e instanceof CutoverError);
      assert.equal(e.exitCode, 8);
      assert.match(e.message, /kept the database as v2\.1\.0 left it/);
      return true;
    });
    assert.equal(sql('PRAGMA user_version'), '2');
    assert.equal(readlinkSync(path.join(config.root, 'current')), 'releases/v1.0.0');
    const st = JSON.parse(readFileSync(path.join(config.root, '.cutover', 'state.json'), 'utf8')) as { database: { schema: number; rollbackSafe: number } };
    assert.deepEqual([st.database.schema, st.database.rollbackSafe], [2, 1], 'the kept database is recorded on the schema it is on');
  });

  test('a release that migrates itself on start and fails to start: its data is put back even though it only expands', async () => {
    s.serviceManager.failing.set('a.service@2.2.0', 'exited 1 (migration crashed)');
    const before = sql('.dump');
    await assert.rejects(update('2.2.0'), (e: unknown) => e instanceof CutoverError && e.exitCode === 8 && /restored the database from backup/.test(e.message));
    assert.equal(sql('.dump'), before);
  });

  test('a schema change with no backup (when = "never") that fails: the units stay stopped rather than run v1 on it (exit 9)', async () => {
    config = { ...config, backup: { ...config.backup, when: 'never' } };
    s.health.unhealthy.add('2.0.0');
    await assert.rejects(update('2.0.0'), (e: unknown) => {
      assert.ok(e instanceof CutoverError);
      assert.equal(e.exitCode, 9);
      assert.match(e.message, /v2\.0\.0 changed the database and there is no backup to put it back .* stay stopped rather than run v1\.0\.0 on it/);
      return true;
    });
    assert.ok(!s.serviceManager.calls.some((c) => c.endsWith('@1.0.0')), 'nothing was started on v1.0.0');
  });

  test('the daemon (migrations = "manual") refuses a schema change the index did not announce, once the signed release.json shows it', async () => {
    const before = sql('.dump');
    await assert.rejects(
      runUpdate(config, s, { version: '2.0.0', dryRun: false, allowDowngrade: false, signal: new AbortController().signal, allowSchemaChange: false }),
      (e: unknown) => e instanceof CutoverError && e.code === 'E_SCHEMA_MANUAL' && e.exitCode === 3 && /changes the database schema \(1 -> 2\)/.test(e.message),
    );
    assert.deepEqual(s.serviceManager.calls, []);
    assert.equal(readlinkSync(path.join(config.root, 'current')), 'releases/v1.0.0');
    assert.ok(!existsSync(path.join(config.root, 'releases', 'v2.0.0')));
    assert.equal(sql('.dump'), before);
  });
});
