/**
 * The whole upgrade, data included, with a real SQLite database and migrations that run as a
 * real unprivileged account: backups, schema records, failed migrations restored, rollbacks
 * refused or restored, dry runs and rehearsals that leave the live database byte-identical.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAccount, idsOf, removeAccount } from '../helpers/accounts.ts';
import { CLI } from '../helpers/cli.ts';
import { sqliteMigration } from '../helpers/sqlite-migration.ts';
import { smallFsAvailable, startSmallFs, type SmallFs } from '../helpers/small-fs.ts';
import { lastLine, World } from '../helpers/world.ts';

const haveSqlite = spawnSync('sqlite3', ['-version']).status === 0;

function json(stdout: string): Record<string, unknown> {
  return JSON.parse(lastLine(stdout)) as Record<string, unknown>;
}

/** An idempotent migration to `schema`, saying what it does in its log. */
const migration = (schema: number, sql: string, tail = ''): string =>
  sqliteMigration(schema, sql, tail, 'echo "migrating $CUTOVER_SCHEMA_FROM -> $CUTOVER_SCHEMA_TO ($CUTOVER_FROM -> $CUTOVER_TO) as $(id -un)"');

const PENDING = `#!/bin/sh
v=$(sqlite3 "$CUTOVER_DATABASE" 'PRAGMA user_version;')
[ "$v" -lt 2 ] && echo "0002_add_tag"
exit 0
`;

describe('updates with a SQLite database', { skip: haveSqlite ? false : 'sqlite3 is not installed (apt-get install sqlite3)' }, () => {
  let w: World;
  let account: string;
  let db: string;
  const sql = (q: string): string => {
    const r = spawnSync('sqlite3', [db, q], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  const dump = (): string => sql('.dump');
  const state = (): Record<string, unknown> => JSON.parse(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8')) as Record<string, unknown>;

  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    w.writeConfig({
      top: `user = "${account}"`,
      trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[backup]\nkeep = 5\n\n[migrate]\ntimeout = "20s"\n`,
    });
    await w.publish('1.0.0', {
      files: { 'bin/migrate': migration(1, 'CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)') },
      manifest: { schema: 1, migrate: ['bin/migrate'] },
    });
    await w.publish('2.0.0', {
      files: { 'bin/migrate': migration(2, 'ALTER TABLE notes ADD COLUMN tag TEXT'), 'bin/pending': PENDING },
      manifest: { schema: 2, migrate: ['bin/migrate'], migrate_pending: ['bin/pending'] },
    });
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test('a first install runs the migration as the app user and records schema 1; nothing to back up yet', async () => {
    const r = await w.run(['update', '--version', 'v1.0.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const st = statSync(db);
    assert.deepEqual({ uid: st.uid, gid: st.gid }, idsOf(account));
    assert.equal(sql('PRAGMA user_version'), '1');
    assert.match(r.stderr, new RegExp(`Migrating the database: schema \\(none\\) -> 1 \\(bin/migrate, as ${account}; log (\\S+)\\)`));
    const log = /; log (\S+)\)/.exec(r.stderr)![1]!;
    assert.match(readFileSync(log, 'utf8'), new RegExp(`migrating {2}-> 1 \\( -> 1\\.0\\.0\\) as ${account}`));
    const s = state();
    assert.equal((s.database as { schema: number }).schema, 1);
    assert.deepEqual(s.backups, []);
    sql("INSERT INTO notes(body) VALUES ('kept across upgrades')");
  });

  test('dry run: the schema change, the backup and its size, the migration and the pending list; nothing changes', async () => {
    const before = dump();
    const bytes = readFileSync(db);
    const snap = w.snapshot();
    const r = await w.run(['update', '--version', 'v2.0.0', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /schema: +1 -> 2/);
    assert.match(r.stdout, /backup: +.*backups\/.*-v1\.0\.0\.db \(about \d/);
    assert.match(r.stdout, /migrate: +bin\/migrate/);
    assert.match(r.stdout, /pending: +0002_add_tag/);
    assert.deepEqual(readFileSync(db), bytes);
    assert.equal(dump(), before);
    assert.deepEqual(w.snapshot(), snap);
  });

  test('--rehearse migrates a copy as the app user and leaves the live database byte-identical', async () => {
    const bytes = readFileSync(db);
    const r = await w.run(['update', '--version', 'v2.0.0', '--dry-run', '--rehearse', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout).rehearsed !== undefined, true);
    assert.deepEqual(readFileSync(db), bytes);
    assert.equal(sql('PRAGMA user_version'), '1');
  });

  test('update to a new schema: backup (0600 in a 0700 dir, checksummed), migration, schema recorded', async () => {
    const r = await w.run(['update', '--version', 'v2.0.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = json(r.stdout);
    assert.deepEqual(out.schema, { from: 1, to: 2 });
    const kinds = (out.steps as Array<{ kind: string }>).map((s) => s.kind);
    assert.deepEqual(kinds.slice(kinds.indexOf('backup')), ['backup', 'switch', 'migrate', 'record-schema']);
    assert.equal(sql('PRAGMA user_version'), '2');
    assert.equal(sql('SELECT body FROM notes'), 'kept across upgrades');
    const list = json((await w.run(['backups', '--json'])).stdout).backups as Array<Record<string, unknown>>;
    assert.equal(list.length, 1);
    const b = list[0]!;
    assert.equal(b.version, '1.0.0');
    assert.equal(b.schema, 1);
    assert.equal(b.protects, '1.0.0');
    const file = b.file as string;
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
    const sum = spawnSync('sha256sum', [file], { encoding: 'utf8' }).stdout.split(' ')[0];
    assert.equal(sum, b.sha256);
    assert.equal((state().database as { schema: number }).schema, 2);
  });

  test('restore of a backup of another schema than the current release runs on is refused (exit 3)', async () => {
    const [b] = json((await w.run(['backups', '--json'])).stdout).backups as Array<{ id: string }>;
    const before = dump();
    const r = await w.run(['restore', b!.id, '--yes']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_BACKUP_SCHEMA: backup \S+ holds schema 1, but the current release v2\.0\.0 runs on schema 2; `rollback --to v1\.0\.0 --restore`/);
    assert.equal(dump(), before);
  });

  test('rollback to a release whose schema the database has left is refused, naming both schemas and the backup', async () => {
    const before = dump();
    const snap = w.snapshot();
    const r = await w.run(['rollback']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_ROLLBACK_SCHEMA: v1\.0\.0 runs on schema 1, but the database is on schema 2/);
    assert.match(r.stderr, /rollback --restore` puts back backup \S+-v1\.0\.0/);
    assert.equal(dump(), before);
    assert.deepEqual(w.snapshot(), snap);
  });

  test('rollback --restore without a terminal needs --yes, and refuses before touching anything', async () => {
    const snap = w.snapshot();
    const r = await w.run(['rollback', '--restore']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /E_USAGE: rollback --restore replaces the database and needs confirmation/);
    assert.deepEqual(w.snapshot(), snap);
  });

  test('rollback --restore --yes puts back the data of v1.0.0 and records schema 1; what it replaced is kept', async () => {
    sql("INSERT INTO notes(body, tag) VALUES ('written on v2', 'x')");
    const r = await w.run(['rollback', '--restore', '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(w.root, 'current', 'release.json'), 'utf8').includes('"1.0.0"'), true);
    assert.equal(sql('PRAGMA user_version'), '1');
    assert.equal(sql('SELECT body FROM notes'), 'kept across upgrades');
    assert.deepEqual(idsOf(account), { uid: statSync(db).uid, gid: statSync(db).gid });
    assert.ok(!existsSync(`${db}-wal`));
    assert.equal((state().database as { schema: number }).schema, 1);
    const reasons = (json((await w.run(['backups', '--json'])).stdout).backups as Array<{ reason: string }>).map((b) => b.reason);
    assert.deepEqual(reasons, ['update', 'restore']);
  });

  test('a migration that applies part of its work and fails: the database holds exactly what it held, current goes back', async () => {
    await w.publish('3.0.0', {
      files: {
        'bin/migrate': migration(
          2,
          'ALTER TABLE notes ADD COLUMN tag TEXT',
          `sqlite3 "$db" "INSERT INTO notes(body) VALUES ('half-done')"\necho 'migration 0003 failed: disk on fire' >&2\nexit 3`,
        ),
      },
      manifest: { schema: 3, migrate: ['bin/migrate'] },
    });
    const before = dump();
    const r = await w.run(['update', '--version', 'v3.0.0']);
    assert.equal(r.code, 8, r.stderr);
    const line = lastLine(r.stderr);
    assert.match(line, /E_MIGRATE_FAILED: the migration of v3\.0\.0 \(schema 1 -> 3\) exited with status 3/);
    assert.match(line, /log: \S+\/\.cutover\/logs\/migrate-v3\.0\.0-\S+\.log/);
    assert.match(line, /restored the database from backup \S+-v1\.0\.0/);
    assert.equal(dump(), before);
    assert.match(readFileSync(path.join(w.root, 'current', 'release.json'), 'utf8'), /"1\.0\.0"/);
    const log = /log: (\S+\.log)/.exec(line)![1]!;
    assert.match(readFileSync(log, 'utf8'), /disk on fire/);
    assert.ok(!existsSync(path.join(w.root, 'releases', 'v3.0.0')));
    assert.equal((state().database as { schema: number }).schema, 1);
  });

  test('a newer release with a lower schema than the database is refused (exit 5), nothing installed', async () => {
    await w.publish('3.1.0', { manifest: { schema: 0 } });
    const snap = w.snapshot();
    const r = await w.run(['update', '--version', 'v3.1.0']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /E_SCHEMA_DOWNGRADE: v3\.1\.0 runs on schema 0, but the database is on schema 1/);
    assert.deepEqual(w.snapshot(), snap);
  });

  test('an index that says another schema than the signed release.json is refused (exit 3)', async () => {
    await w.publish('3.2.0', {
      manifest: { schema: 2, migrate: ['bin/migrate'] },
      files: { 'bin/migrate': migration(2, 'SELECT 1') },
      indexExtra: { schema: 1 },
    });
    const snap = w.snapshot();
    const r = await w.run(['update', '--version', 'v3.2.0']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_INDEX_MISMATCH: the index says v3\.2\.0 has schema 1, its signed release\.json says 2/);
    assert.deepEqual(w.snapshot(), snap);
  });

  test('a backup that fails its checksum is never restored (exit 6), nothing changed', async () => {
    const list = json((await w.run(['backups', '--json'])).stdout).backups as Array<{ id: string; file: string }>;
    const b = list[0]!;
    const bytes = readFileSync(b.file);
    bytes[bytes.length - 1] = bytes.at(-1)! ^ 0xff;
    writeFileSync(b.file, bytes);
    const before = dump();
    const r = await w.run(['restore', b.id, '--yes', '--ignore-schema']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /E_BACKUP_CORRUPT: backup \S+ \(\S+\) has sha256 [0-9a-f]{64}, not the [0-9a-f]{64} recorded/);
    assert.equal(dump(), before);
  });
});

describe('a SQLite migration killed with cutover, a compatible rollback, --ignore-schema', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let db: string;
  const sql = (q: string): string => {
    const r = spawnSync('sqlite3', [db, q], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  const current = (): string => (JSON.parse(readFileSync(path.join(w.root, 'current', 'release.json'), 'utf8')) as { version: string }).version;
  const state = (): Record<string, unknown> => JSON.parse(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8')) as Record<string, unknown>;

  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    w.writeConfig({ top: `user = "${account}"`, trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n` });
    await w.publish('1.0.0', {
      files: { 'bin/migrate': migration(1, 'CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)') },
      manifest: { schema: 1, migrate: ['bin/migrate'] },
    });
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    sql("INSERT INTO notes(body) VALUES ('before')");
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test('SIGKILL during the migration: the next command ends the migration left running, restores the backup, switches back', async () => {
    const marker = path.join(w.root, 'runtime', 'data', 'migrating');
    await w.publish('2.0.0', {
      files: {
        'bin/migrate': migration(
          2,
          'ALTER TABLE notes ADD COLUMN tag TEXT',
          `sqlite3 "$db" "INSERT INTO notes(body) VALUES ('half-done')"\ntouch ${marker}\nexec sleep 600`,
        ),
      },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    const before = sql('.dump');
    const { child, done } = w.spawn(['update', '--version', 'v2.0.0']);
    await waitFor(() => existsSync(marker), 60_000);
    const left = JSON.parse(readFileSync(path.join(w.root, '.cutover', 'migrate.pid'), 'utf8')) as { pid: number };
    child.kill('SIGKILL');
    await done;
    assert.ok(existsSync(`/proc/${left.pid}`), 'the migration outlives a SIGKILLed cutover (own process group)');
    assert.equal(current(), '2.0.0');
    const r = await w.run(['gc']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /killed the migration left running \(pid \d+\)/);
    assert.match(r.stderr, /restored the database from backup/);
    assert.ok(
      !existsSync(`/proc/${left.pid}`) || readFileSync(`/proc/${left.pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z'),
      'the leftover migration is gone',
    );
    assert.equal(sql('.dump'), before);
    assert.equal(current(), '1.0.0');
    assert.equal(state().journal, null);
    assert.equal((state().database as { schema: number }).schema, 1);
  });

  test('a release whose migrations only expand: rollback runs without a restore and keeps the recorded schema', async () => {
    await w.publish('2.1.0', {
      files: { 'bin/migrate': migration(2, 'ALTER TABLE notes ADD COLUMN tag TEXT') },
      manifest: { schema: 2, rollback_safe_schema: 1, migrate: ['bin/migrate'] },
    });
    let r = await w.run(['update', '--version', 'v2.1.0']);
    assert.equal(r.code, 0, r.stderr);
    sql("INSERT INTO notes(body, tag) VALUES ('on v2.1', 't')");
    r = await w.run(['rollback', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(current(), '1.0.0');
    assert.equal(sql("SELECT count(*) FROM notes WHERE body = 'on v2.1'"), '1', 'no restore: what v2.1 wrote is still there');
    assert.deepEqual(
      (json(r.stdout).steps as Array<{ kind: string }>).map((s) => s.kind),
      ['check-retained', 'switch'],
    );
    assert.equal((state().database as { schema: number }).schema, 2);
  });

  test('--ignore-schema switches the code only, onto a schema the release was not built for', async () => {
    await w.publish('3.0.0', {
      files: { 'bin/migrate': migration(3, 'CREATE TABLE tags(name TEXT)') },
      manifest: { schema: 3, migrate: ['bin/migrate'] },
    });
    let r = await w.run(['update', '--version', 'v3.0.0']);
    assert.equal(r.code, 0, r.stderr);
    r = await w.run(['rollback', '--to', 'v1.0.0']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_ROLLBACK_SCHEMA/);
    r = await w.run(['rollback', '--to', 'v1.0.0', '--ignore-schema']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /--ignore-schema: switching the code only; the database stays on schema 3/);
    assert.equal(current(), '1.0.0');
    assert.equal(sql('PRAGMA user_version'), '3');
    assert.equal((state().database as { schema: number }).schema, 3);
  });
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('required upgrade stops, and the daemon leaving a schema change alone', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let db: string;
  const sql = (q: string): string => spawnSync('sqlite3', [db, q], { encoding: 'utf8' }).stdout.trim();
  const current = (): string => (JSON.parse(readFileSync(path.join(w.root, 'current', 'release.json'), 'utf8')) as { version: string }).version;
  const step = (schema: number, extra: Record<string, unknown> = {}, tail = '') => ({
    files: { 'bin/migrate': migration(schema, `CREATE TABLE t${schema}(x)`, tail) },
    manifest: { schema, migrate: ['bin/migrate'], ...extra },
    indexExtra: { schema, ...(extra.upgrade_from ? { upgrade_from: extra.upgrade_from } : {}) },
  });

  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    w.writeConfig({ keep: 5, top: `user = "${account}"`, trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[daemon]\nauto = "major"\n` });
    await w.publish('1.0.0', step(1));
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    await w.publish('1.4.0', step(2));
    await w.publish('1.5.0', step(3));
    await w.publish('2.0.0', step(4, { upgrade_from: '>=1.4.0' }));
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test('check (and so the daemon, migrations = "manual") leaves a schema change to a manual update', async () => {
    const r = await w.run(['check', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const c = json(r.stdout);
    assert.equal(c.daemon, 'none');
    assert.match(c.reason as string, /changes the database schema \(1 -> [0-9]\); daemon\.migrations = "manual" leaves it to `update` by hand/);
  });

  test('the dry run prints the path; update walks it hop by hop, each a full update with its own backup', async () => {
    const dry = await w.run(['update', '--version', 'v2.0.0', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(json(dry.stdout).path, ['1.5.0', '2.0.0']);
    assert.match(dry.stderr, /v2\.0\.0 upgrades only from >=1\.4\.0: the path is v1\.0\.0 -> v1\.5\.0 -> v2\.0\.0, each hop a full update/);
    const r = await w.run(['update', '--version', 'v2.0.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout).path, ['1.5.0', '2.0.0']);
    assert.equal(current(), '2.0.0');
    assert.equal(sql('PRAGMA user_version'), '4');
    const backups = json((await w.run(['backups', '--json'])).stdout).backups as Array<{ version: string; schema: number }>;
    assert.deepEqual(
      backups.map((b) => [b.version, b.schema]),
      [
        ['1.0.0', 1],
        ['1.5.0', 3],
      ],
    );
  });

  test('a path whose second hop fails: the first hop stays, the failed one is undone, exit 8 says where it stands', async () => {
    await w.publish('2.5.0', step(5));
    await w.publish('3.0.0', step(6, { upgrade_from: '>=2.5.0' }, 'echo "0006 failed" >&2; exit 4'));
    const r = await w.run(['update', '--version', 'v3.0.0']);
    assert.equal(r.code, 8, r.stderr);
    assert.match(lastLine(r.stderr), /E_MIGRATE_FAILED: .*; the update stopped on v2\.5\.0 \(hop 2 of 2 failed\); left to do: v3\.0\.0/);
    assert.equal(current(), '2.5.0');
    assert.equal(sql('PRAGMA user_version'), '5');
  });
});

const small = smallFsAvailable();
describe('no space for the backup', { skip: !haveSqlite ? 'sqlite3 is not installed' : small.ok ? false : small.why }, () => {
  let w: World;
  let account: string;
  let fs: SmallFs;
  let bk: string;
  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    bk = path.join(w.dir, 'bk');
    fs = await startSmallFs(bk, { bytes: 256 * 1024 });
    w.runner = (args, env) => fs.exec(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, ...args], { CUTOVER_PROG: 'demo', ...env });
    w.writeConfig({ top: `user = "${account}"`, trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[backup]\ndir = "${bk}/demo"\n` });
    await w.publish('1.0.0', {
      files: { 'bin/migrate': migration(1, 'CREATE TABLE t(b BLOB); INSERT INTO t SELECT randomblob(1048576)') },
      manifest: { schema: 1, migrate: ['bin/migrate'] },
    });
    await w.publish('2.0.0', { files: { 'bin/migrate': migration(2, 'CREATE TABLE u(x)') }, manifest: { schema: 2, migrate: ['bin/migrate'] } });
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    fs?.stop();
    await w?.close();
    removeAccount(account);
  });

  test('a backup that does not fit stops the update before the switch: exit 6, nothing changed, no partial file', async () => {
    const snap = w.snapshot();
    const r = await w.run(['update', '--version', 'v2.0.0']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(lastLine(r.stderr), /E_BACKUP_FAILED: not enough space in \S+\/bk\/demo for a backup of about 1\.\d MiB/);
    assert.deepEqual(w.snapshot(), snap);
    assert.equal((await fs.exec('ls', ['-A', `${bk}/demo`])).stdout.trim(), '');
  });
});

describe('a migration that hangs, reads stdin or floods its output', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let db: string;
  const sql = (q: string): string => spawnSync('sqlite3', [db, q], { encoding: 'utf8' }).stdout.trim();
  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    w.writeConfig({ top: `user = "${account}"`, trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[migrate]\ntimeout = "2s"\n` });
    await w.publish('1.0.0', { files: { 'bin/migrate': migration(1, 'CREATE TABLE notes(body TEXT)') }, manifest: { schema: 1, migrate: ['bin/migrate'] } });
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    sql("INSERT INTO notes VALUES ('v1')");
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test('one that hangs is killed at migrate.timeout with its children, and the backup is restored (exit 8)', async () => {
    const pids = path.join(w.root, 'runtime', 'data', 'pids');
    await w.publish('2.0.0', {
      files: { 'bin/migrate': migration(2, 'ALTER TABLE notes ADD COLUMN tag TEXT', `sleep 301 &\necho $! > ${pids}\nexec sleep 302`) },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    const before = sql('.dump');
    const r = await w.run(['update', '--version', 'v2.0.0']);
    assert.equal(r.code, 8, r.stderr);
    assert.match(lastLine(r.stderr), /E_MIGRATE_FAILED: the migration of v2\.0\.0 \(schema 1 -> 2\) timed out after 2\.0s and was killed/);
    const child = Number(readFileSync(pids, 'utf8'));
    const alive = existsSync(`/proc/${child}`) && !readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
    assert.ok(!alive, 'its background child was killed too');
    assert.equal(sql('.dump'), before);
  });

  test('a rehearsal whose migration fails exits 8 with the log tail, and the live database is byte-identical', async () => {
    await w.publish('2.2.0', {
      files: { 'bin/migrate': migration(2, 'ALTER TABLE notes ADD COLUMN tag TEXT', `echo 'rehearsed failure: column clash' >&2\nexit 5`) },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    const bytes = readFileSync(db);
    const r = await w.run(['update', '--version', 'v2.2.0', '--dry-run', '--rehearse']);
    assert.equal(r.code, 8, r.stderr);
    assert.match(lastLine(r.stderr), /E_MIGRATE_FAILED: the rehearsed migration of v2\.2\.0 exited with status 5 .*rehearsed failure: column clash/);
    assert.deepEqual(readFileSync(db), bytes);
  });

  test('one that reads stdin gets end-of-file at once; one that prints 100 MB leaves a log of its first and last MiB', async () => {
    await w.publish('2.1.0', {
      files: {
        'bin/migrate': migration(
          2,
          'ALTER TABLE notes ADD COLUMN tag TEXT',
          `input=$(cat)\necho "stdin: [$input]"\nyes 'a line of migration output' | head -c 100000000\necho\necho 'the last line'`,
        ),
      },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    const r = await w.run(['update', '--version', 'v2.1.0']);
    assert.equal(r.code, 0, r.stderr);
    const log = /; log (\S+)\)/.exec(r.stderr)![1]!;
    const size = statSync(log).size;
    assert.ok(size > 2 * 1024 * 1024 && size < 2 * 1024 * 1024 + 4096, `log is ${size} bytes`);
    const text = readFileSync(log, 'utf8');
    assert.match(text, /^stdin: \[\]$/m);
    assert.match(text, /\[cutover: \d+ bytes omitted\]/);
    assert.match(text, /the last line\n$/);
  });
});

describe('manual backups and restores: the typed confirmation, pruning beyond keep', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let db: string;
  const sql = (q: string): string => spawnSync('sqlite3', [db, q], { encoding: 'utf8' }).stdout.trim();
  const backups = async () => json((await w.run(['backups', '--json'])).stdout).backups as Array<{ id: string; file: string; reason: string }>;
  /** The CLI on a pseudo-terminal (util-linux `script`), with `input` typed at it. */
  const onTerminal = (args: string[], input: string) =>
    spawnSync('script', ['-qec', [process.execPath, '--disable-warning=ExperimentalWarning', CLI, '--config', w.configFile, ...args].join(' '), '/dev/null'], {
      input,
      encoding: 'utf8',
      env: { ...process.env, CUTOVER_PROG: 'demo' },
      timeout: 60_000,
    });
  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    w.writeConfig({ top: `user = "${account}"`, trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[backup]\nkeep = 1\n` });
    await w.publish('1.0.0', { files: { 'bin/migrate': migration(1, 'CREATE TABLE notes(body TEXT)') }, manifest: { schema: 1, migrate: ['bin/migrate'] } });
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test('backup takes one now; beyond [backup] keep the oldest go; gc prunes them too', async () => {
    sql("INSERT INTO notes VALUES ('first')");
    for (let i = 0; i < 3; i++) {
      const r = await w.run(['backup', '--json']);
      assert.equal(r.code, 0, r.stderr);
    }
    const left = await backups();
    assert.equal(left.length, 1, 'keep = 1: only the newest manual backup stays');
    assert.equal(left[0]!.reason, 'manual');
    assert.ok(existsSync(left[0]!.file));
  });

  test('restore asks for the app name on a terminal: a wrong answer changes nothing, the right one restores', async () => {
    const [b] = await backups();
    sql("INSERT INTO notes VALUES ('after the backup')");
    const before = sql('.dump');
    let r = onTerminal(['restore', b!.id], 'nope\n');
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stdout, /Type the app's name \(demo\) to go on:/);
    assert.match(r.stdout, /E_USAGE: not confirmed; nothing was changed/);
    assert.equal(sql('.dump'), before);
    r = onTerminal(['restore', b!.id], 'demo\n');
    assert.equal(r.status, 0, r.stdout);
    assert.equal(sql('SELECT group_concat(body) FROM notes'), 'first');
  });

  test('gc removes backups beyond keep as well', async () => {
    w.writeConfig({ top: `user = "${account}"`, trust: `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[backup]\nkeep = 0\n` });
    const all = await backups();
    const r = await w.run(['gc', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      json(r.stdout).prunedBackups,
      all.map((b) => b.id),
    );
    assert.deepEqual(await backups(), []);
    for (const b of all) assert.ok(!existsSync(b.file));
  });
});

describe('[database] kind = "command", and a restore that fails', { skip: haveSqlite ? false : 'sqlite3 is not installed' }, () => {
  let w: World;
  let account: string;
  let db: string;
  const sql = (q: string): string => spawnSync('sqlite3', [db, q], { encoding: 'utf8' }).stdout.trim();
  before(async () => {
    account = createAccount();
    w = await World.create();
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    const tools = path.join(w.dir, 'tools');
    mkdirSync(tools);
    // cutover cannot know whether a database behind a command exists: before the first install it backs up "nothing".
    writeFileSync(path.join(tools, 'backup'), `#!/bin/sh\nif [ -e ${db} ]; then exec cp ${db} "$1"; else echo empty > "$1"; fi\n`, { mode: 0o755 });
    writeFileSync(path.join(tools, 'restore'), `#!/bin/sh\necho "restore: the tape drive is on fire" >&2\nexit 1\n`, { mode: 0o755 });
    w.writeConfig({
      top: `user = "${account}"`,
      trust: `\n[database]\nkind = "command"\nbackup = ["${tools}/backup", "{file}"]\nrestore = ["${tools}/restore", "{file}"]\n`,
    });
    // With kind = "command" cutover cannot tell a migration where the database is: the release knows.
    const own = (m: string): string => m.replace('set -eu', `set -eu\nCUTOVER_DATABASE=${db}`);
    await w.publish('1.0.0', {
      files: { 'bin/migrate': own(migration(1, 'CREATE TABLE notes(body TEXT)')) },
      manifest: { schema: 1, migrate: ['bin/migrate'] },
    });
    await w.publish('2.0.0', {
      files: { 'bin/migrate': own(migration(2, 'ALTER TABLE notes ADD COLUMN tag TEXT', 'exit 3')) },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await w.close();
    removeAccount(account);
  });

  test("the operator's backup command runs before the migration; a restore that fails is exit 9 with the state and the command to run by hand", async () => {
    const r = await w.run(['update', '--version', 'v2.0.0', '--json']);
    assert.equal(r.code, 9, r.stderr);
    const line = lastLine(r.stderr);
    assert.match(line, /E_ROLLBACK_FAILED: the migration of v2\.0\.0 \(schema 1 -> 2\) exited with status 3/);
    assert.match(
      line,
      /restoring the database from backup (\S+) failed: the restore command \S+\/tools\/restore failed \(exit 1\): restore: the tape drive is on fire; the database holds what the migration of v2\.0\.0 left/,
    );
    assert.match(line, /restore it by hand: \S+\/tools\/restore \S+\/backups\/\S+\.backup/);
    // The switch back came first (undo runs in reverse); with units they would stay stopped: nothing runs on that schema.
    assert.match(line, /current points at releases\/v1\.0\.0/);
    const backup = json((await w.run(['backups', '--json'])).stdout).backups as Array<{ file: string; reason: string }>;
    assert.equal(backup.at(-1)!.reason, 'update');
    assert.ok(existsSync(backup.at(-1)!.file), 'the backup is kept for the hand restore');
    assert.equal(sql('PRAGMA user_version'), '2', 'the half-migrated database as it was left');
  });
});
