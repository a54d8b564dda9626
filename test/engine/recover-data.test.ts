/**
 * Recovery of a schema-changing update killed at each step: the journal and the disk are written
 * as a SIGKILL would leave them (the running step's effect done or not: a real SQLite backup, a
 * real migration applied), then `recover` runs in-process with fake units. Before the gate it is
 * undone: the data as it was, v1 current and started again; after it, completed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readlinkSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { databaseDriver, openBackupDir, takeBackup } from '../../src/database/backups.ts';
import { recover } from '../../src/engine/recover.ts';
import type { Step, StepRecord } from '../../src/engine/steps.ts';
import { runUpdate } from '../../src/engine/update.ts';
import { layoutOf } from '../../src/layout/paths.ts';
import { removeRelease } from '../../src/layout/releases.ts';
import { switchCurrent } from '../../src/layout/swap.ts';
import { readState, writeState } from '../../src/state/state.ts';
import { createAccount, removeAccount } from '../helpers/accounts.ts';
import { fakeServices } from '../helpers/engine-fakes.ts';
import { sqliteMigration } from '../helpers/sqlite-migration.ts';
import { World } from '../helpers/world.ts';

const haveSqlite = spawnSync('sqlite3', ['-version']).status === 0;
const never = new AbortController().signal;

const migrate = (schema: number, sql: string): string => sqliteMigration(schema, sql);

describe('recovery of a schema-changing update from each journal position', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let base: Config;
  let n = 0;
  const configFor = (root: string): Config => ({
    ...base,
    root,
    backup: { ...base.backup, dir: path.join(root, 'backups') },
    database: { kind: 'sqlite', path: path.join(root, 'runtime', 'data', 'demo.db') },
  });
  const sql = (root: string, q: string): string => spawnSync('sqlite3', [path.join(root, 'runtime', 'data', 'demo.db'), q], { encoding: 'utf8' }).stdout.trim();

  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    w.writeConfig({
      top: `user = "${account}"\n[service]\nunits = ["a.service", "b.service"]\n\n[health]\nurl = "http://127.0.0.1:9/health"\n\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n`,
    });
    base = await loadConfig(w.configFile);
    await w.publish('1.0.0', { files: { 'bin/migrate': migrate(1, 'CREATE TABLE notes(body TEXT)') }, manifest: { schema: 1, migrate: ['bin/migrate'] } });
    await w.publish('2.0.0', {
      files: { 'bin/migrate': migrate(2, 'ALTER TABLE notes ADD COLUMN tag TEXT') },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test('killed before the gate passed: undone to v1 with its data; killed after: completed', async () => {
    // The real plan, from a dry run.
    let steps: Step[];
    {
      const root = path.join(w.dir, `plan-${++n}`);
      const config = configFor(root);
      const s = fakeServices(root, w.caFile);
      await runUpdate(config, s, { version: '1.0.0', dryRun: false, allowDowngrade: false, signal: never });
      const dry = await runUpdate(config, s, { version: '2.0.0', dryRun: true, allowDowngrade: false, signal: never });
      steps = dry.steps.map(({ outcome: _o, ms: _m, ...step }) => step as unknown as Step);
    }
    const kinds = steps.map((x) => x.kind as string);
    assert.deepEqual(kinds, [
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
    const at = (k: string): number => kinds.indexOf(k);
    const commitAt = at('gate');
    const backupStep = steps[at('backup')] as Extract<Step, { kind: 'backup' }>;

    const cases: Array<{ i: number; effect: boolean }> = [];
    for (let i = at('install'); i < steps.length; i++) {
      cases.push({ i, effect: false });
      if (['install', 'backup', 'switch', 'migrate', 'record-schema'].includes(kinds[i]!)) cases.push({ i, effect: true });
    }
    for (const { i, effect } of cases) {
      const label = `killed in step ${i + 1} (${kinds[i]}), its effect ${effect ? 'done' : 'not done'}`;
      const root = path.join(w.dir, `root-${++n}`);
      const config = configFor(root);
      // v1 then v2 for real (so that v2's tree exists), then back to v1 as the update found it.
      let s = fakeServices(root, w.caFile);
      await runUpdate(config, s, { version: '1.0.0', dryRun: false, allowDowngrade: false, signal: never });
      await runUpdate(config, s, { version: '2.0.0', dryRun: false, allowDowngrade: false, signal: never });
      const layout = layoutOf(root);
      await switchCurrent(layout, '1.0.0');
      s = fakeServices(root, w.caFile);
      const did = (k: string): boolean => at(k) < i || (at(k) === i && effect);
      const state = await readState(layout);
      // The database as v1 made it, with a row.
      spawnSync('sqlite3', [
        path.join(root, 'runtime', 'data', 'demo.db'),
        'DROP TABLE IF EXISTS notes; CREATE TABLE notes(body TEXT); PRAGMA user_version=1;',
      ]);
      sql(root, "INSERT INTO notes VALUES ('v1 data')");
      state.database = { schema: 1, rollbackSafe: 1, version: '1.0.0', at: new Date().toISOString(), via: 'migrate' };
      state.backups = [];
      rmSync(config.backup.dir, { recursive: true, force: true });
      state.previous = null;
      state.bad = [];
      const before = sql(root, '.dump');
      if (!did('install')) {
        await removeRelease(layout, '2.0.0');
        delete state.installed['2.0.0'];
      }
      if (did('backup')) {
        const driver = databaseDriver(config)!;
        const dir = openBackupDir(config.backup.dir);
        state.backups.push(
          await takeBackup(
            driver,
            path.join(dir, backupStep.file),
            { id: backupStep.id, version: '1.0.0', schema: 1, rollbackSafe: 1, reason: 'update', created: new Date().toISOString(), file: backupStep.file },
            never,
          ),
        );
      }
      if (did('switch')) {
        await switchCurrent(layout, '2.0.0');
        state.previous = '1.0.0';
      }
      if (did('migrate')) sql(root, 'ALTER TABLE notes ADD COLUMN tag TEXT; PRAGMA user_version=2;');
      if (did('record-schema')) state.database = { schema: 2, rollbackSafe: 2, version: '2.0.0', at: new Date().toISOString(), via: 'migrate' };
      const records: StepRecord[] = steps.map((step, j) => ({ step, status: j < i ? 'done' : j === i ? 'running' : 'pending' }));
      state.journal = {
        op: 'update',
        from: '1.0.0',
        to: '2.0.0',
        startedAt: new Date().toISOString(),
        pid: 999_999,
        recovery: 'undo',
        commitAt,
        steps: records,
      };
      await writeState(layout, state);

      const { recovery, state: after } = await recover(config, s, layout);
      const now = readlinkSync(path.join(root, 'current'));
      assert.equal(after.journal, null, label);
      if (i > commitAt) {
        assert.equal(recovery.pending, 'completed', label);
        assert.equal(now, 'releases/v2.0.0', label);
        assert.equal(after.database?.schema, 2, label);
        assert.equal(sql(root, 'PRAGMA user_version'), '2', label);
      } else {
        assert.equal(recovery.pending, 'undone', label);
        assert.equal(now, 'releases/v1.0.0', label);
        assert.equal(sql(root, '.dump'), before, `${label}: the data as it was`);
        assert.equal(after.database?.schema, 1, label);
        assert.equal(existsSync(path.join(root, 'releases', 'v2.0.0')), false, `${label}: the install is undone`);
        // Once the units were stopped, they are brought back on v1 (and nothing runs while the data goes back).
        if (i >= at('stop')) {
          assert.deepEqual(s.serviceManager.calls.slice(-2), ['restart a.service@1.0.0', 'restart b.service@1.0.0'], label);
          const restoreAt = s.serviceManager.calls.findIndex((c) => c.startsWith('restart'));
          assert.ok(
            s.serviceManager.calls.slice(0, restoreAt).every((c) => c.startsWith('stop')),
            `${label}: only stops before v1 comes back`,
          );
        }
      }
    }
  });
});
