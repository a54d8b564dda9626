import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RunUser } from '../../src/database/driver.ts';
import { parseDatabaseUrl, postgresDriver, toolInvocation } from '../../src/database/postgres.ts';
import { CutoverError } from '../../src/errors.ts';
import { commandEnv } from '../../src/system/commands.ts';
import { createAccount, idsOf, removeAccount } from '../helpers/accounts.ts';
import { rejectsAsync } from '../helpers/assert.ts';
import { postgresAvailable, startPostgres, type Postgres } from '../helpers/postgres.ts';
import { smallFsAvailable, startSmallFs } from '../helpers/small-fs.ts';

const DRIVER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'database', 'postgres.ts');

describe('the PostgreSQL URL: the password stays out of argv', () => {
  test('a password in the userinfo or in ?password= is cut out of the URL and passed as PGPASSWORD', () => {
    const a = parseDatabaseUrl('postgresql://app:s%40cr%2Ft@db.example:5432/app?sslmode=require');
    assert.deepEqual(a, { url: 'postgresql://app@db.example:5432/app?sslmode=require', password: 's@cr/t' });
    const b = parseDatabaseUrl('postgres:///app?host=%2Frun%2Fpg&password=hunter2&user=app');
    assert.deepEqual(b, { url: 'postgres:///app?host=%2Frun%2Fpg&user=app', password: 'hunter2' });
    assert.deepEqual(parseDatabaseUrl('postgresql:///app'), { url: 'postgresql:///app', password: undefined });

    const inv = toolInvocation(a, 'pg_dump', ['--format=custom']);
    assert.equal(inv.cmd, 'pg_dump');
    assert.deepEqual(inv.args, ['--format=custom', '--no-password', '--dbname=postgresql://app@db.example:5432/app?sslmode=require']);
    assert.ok(!inv.args.join(' ').includes('s@cr/t') && !inv.args.join(' ').includes('s%40cr'));
    assert.equal(inv.env.PGPASSWORD, 's@cr/t');
    assert.equal(inv.env.PATH, commandEnv().PATH);
    assert.equal(toolInvocation(parseDatabaseUrl('postgresql:///app'), 'psql', []).env.PGPASSWORD, undefined);

    const d = postgresDriver({ url: 'postgresql://app:hunter2@db.example/app', user: undefined });
    assert.equal(d.describe, 'postgresql://app@db.example/app');
    assert.deepEqual(d.env, { DATABASE_URL: 'postgresql://app:hunter2@db.example/app' }, 'the migration gets the URL as configured');
    assert.equal(d.extension, '.dump');
  });

  test('what is not a postgresql:// URL is a configuration error', () => {
    for (const url of ['host=db dbname=app', 'mysql://db/app', 'postgresql://app:%zz@db/app']) {
      assert.throws(
        () => postgresDriver({ url, user: undefined }),
        (e: unknown) => e instanceof CutoverError && e.code === 'E_CONFIG' && !!e.hint,
      );
    }
  });
});

const avail = postgresAvailable();

describe('PostgreSQL driver against a real server', { skip: avail.ok ? false : avail.why }, () => {
  let pg: Postgres;
  let app: string;
  let user: RunUser;
  let work: string;
  let backups: string;
  let dbs = 0;

  /** A database owned by the app's role, with what migrations make: tables, a foreign key, a view, an enum, a function, rows. */
  const freshDb = (rows = 3): string => {
    const name = `app${++dbs}`;
    pg.createDatabase(name, app);
    pg.psql(
      `CREATE TYPE mood AS ENUM ('ok', 'meh');
       CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'ok');
       CREATE TABLE notes (id serial PRIMARY KEY, item int REFERENCES items(id), body text);
       CREATE VIEW named AS SELECT id, name FROM items;
       CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT upper(t)';
       INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, ${rows}) g;
       INSERT INTO notes (item, body) VALUES (1, 'first');`,
      { db: name, as: app },
    );
    return name;
  };
  const driverFor = (db: string, timeouts = {}) => postgresDriver({ url: pg.url(db), user, timeouts });
  const backupFile = (name: string) => path.join(backups, `${name}-${++dbs}.dump`);
  const never = new AbortController().signal;

  before(async () => {
    pg = await startPostgres();
    app = createAccount();
    user = { name: app, ...idsOf(app) };
    pg.createRole(app, { createdb: true });
    work = mkdtempSync(path.join(os.tmpdir(), 'cutover-pgtest-'));
    backups = path.join(work, 'backups');
    mkdirSync(backups, { mode: 0o700 });
  });
  after(async () => {
    await pg?.stop();
    if (app) removeAccount(app);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('backup, check, change everything a migration changes, restore: the database is exactly as backed up, and still the app’s', async () => {
    const db = freshDb();
    const d = driverFor(db);
    const file = backupFile(db);
    const before = pg.dump(db);
    await d.backup(file, never);
    const st = statSync(file);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0, 'root owns the backup; pg_dump ran as the app and only wrote to a pipe');
    await d.check(file);

    pg.psql(
      `INSERT INTO items (name) VALUES ('new');
       UPDATE items SET name = 'renamed' WHERE id = 2;
       DROP VIEW named;
       DROP TABLE notes;
       ALTER TABLE items ADD COLUMN price int;
       CREATE TABLE audit (id serial PRIMARY KEY, item int REFERENCES items(id));
       INSERT INTO audit (item) VALUES (1);
       CREATE SCHEMA extra; CREATE TABLE extra.t (i int);`,
      { db, as: app },
    );
    assert.notEqual(pg.dump(db), before);
    await d.restore(file);
    assert.equal(pg.dump(db), before, 'rows, dropped tables, added tables and schemas, the added foreign key: all as backed up');

    // The app can still write and alter (own) everything: --no-owner recreated the objects as its role.
    pg.psql(`INSERT INTO items (name) VALUES ('after'); INSERT INTO notes (item, body) VALUES (4, 'x'); ALTER TABLE items ADD COLUMN later int;`, {
      db,
      as: app,
    });
    assert.equal(pg.psql(`SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'`, { db }), app);
    assert.equal(pg.psql(`SELECT shout(name) FROM items WHERE id = 4`, { db, as: app }), 'AFTER');
  });

  test('exists, estimateBytes: a missing database is "none yet", a refused connection is an error', async () => {
    const db = freshDb();
    assert.equal(await driverFor(db).exists(), true);
    assert.ok((await driverFor(db).estimateBytes()) > 1_000_000, 'pg_database_size');
    assert.equal(await driverFor('nosuchdb').exists(), false);
    const refused = postgresDriver({ url: pg.url(db, 'nosuchrole'), user });
    const e = await rejectsAsync('E_BACKUP_FAILED', () => refused.exists());
    assert.match(e.message, /^cannot reach the database postgresql:\/\/\/app\d+\?host=\S+ as cutover-t\w+: .*nosuchrole/);
  });

  test('a backup that fails leaves no file; a file already there is refused and left alone', async () => {
    const file = backupFile('missing');
    const e = await rejectsAsync('E_BACKUP_FAILED', () => driverFor('nosuchdb').backup(file, never));
    assert.match(e.message, /pg_dump of .* failed: .*database "nosuchdb" does not exist/);
    assert.equal(existsSync(file), false);

    const taken = backupFile('taken');
    writeFileSync(taken, 'not mine');
    await rejectsAsync('E_BACKUP_FAILED', () => driverFor(freshDb()).backup(taken, never));
    assert.equal(readFileSync(taken, 'utf8'), 'not mine');

    const aborted = new AbortController();
    aborted.abort();
    const stopped = backupFile('aborted');
    const s = await rejectsAsync('E_BACKUP_FAILED', () => driverFor(freshDb()).backup(stopped, aborted.signal));
    assert.match(s.message, /was stopped: it was interrupted/);
    assert.equal(existsSync(stopped), false);
  });

  test('check: an empty database’s backup reads back; truncated, garbled or foreign files are E_BACKUP_CORRUPT', async () => {
    pg.createDatabase('empty', app);
    const empty = backupFile('empty');
    await driverFor('empty').backup(empty, never);
    await driverFor('empty').check(empty);

    const db = freshDb(20_000);
    const d = driverFor(db);
    const good = backupFile(db);
    await d.backup(good, never);
    const bytes = readFileSync(good);
    const variant = (name: string, content: Buffer): string => {
      const f = path.join(backups, name);
      writeFileSync(f, content, { mode: 0o600 });
      return f;
    };
    const truncated = variant('truncated.dump', bytes.subarray(0, Math.floor(bytes.length * 0.9)));
    // Its table of contents is intact: --list alone would call it fine.
    assert.equal(spawnSync('pg_restore', ['--list', truncated], { env: commandEnv(), stdio: 'ignore' }).status, 0);
    const garbled = Buffer.from(bytes);
    for (let i = Math.floor(bytes.length / 2); i < bytes.length / 2 + 64; i++) garbled[i] = (garbled[i] ?? 0) ^ 0x5a;
    for (const f of [truncated, variant('garbled.dump', garbled), variant('text.dump', Buffer.from('SELECT 1;\n')), variant('zero.dump', Buffer.alloc(0))]) {
      const e = await rejectsAsync('E_BACKUP_CORRUPT', () => d.check(f));
      assert.match(e.message, new RegExp(`^the backup ${f} does not read back as a pg_dump archive: \\S`));
    }
    await rejectsAsync('E_BACKUP_CORRUPT', () => d.check(path.join(backups, 'absent.dump')));
  });

  test('a restore from a garbled or truncated backup fails and changes nothing (one transaction)', async () => {
    const db = freshDb(20_000);
    const d = driverFor(db);
    const good = backupFile(db);
    await d.backup(good, never);
    pg.psql(`DELETE FROM items WHERE id > 10000; CREATE TABLE since (i int);`, { db, as: app });
    const now = pg.dump(db);
    const bytes = readFileSync(good);
    const truncated = path.join(backups, 'restore-truncated.dump');
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.9)), { mode: 0o600 });
    const garbled = path.join(backups, 'restore-garbled.dump');
    writeFileSync(garbled, Buffer.concat([Buffer.from('PGDMP'), bytes.subarray(40, 4000)]), { mode: 0o600 });
    for (const f of [truncated, garbled]) {
      const e = await rejectsAsync('E_BACKUP_FAILED', () => d.restore(f));
      assert.match(e.message, /failed, the database is unchanged \(the restore is one transaction\): pg_restore cannot read the backup: pg_restore: error: /);
      assert.equal(pg.dump(db), now);
    }
    await d.restore(good);
    assert.notEqual(pg.dump(db), now);
    assert.equal(pg.psql('SELECT count(*) FROM items', { db }), '20000');
  });

  test('a session holding a lock makes backup and restore fail after the lock timeout instead of waiting forever', async () => {
    const db = freshDb();
    const d = driverFor(db, { lockMs: 300 });
    const file = backupFile(db);
    await d.backup(file, never);
    const now = pg.dump(db);
    const holder = spawn('psql', ['-X', '-q', '-A', '-t', '-h', pg.socketDir, '-d', db], {
      uid: user.uid,
      gid: user.gid,
      cwd: '/',
      env: commandEnv(),
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      holder.stdin.write('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT 1;\n');
      await once(holder.stdout, 'data');
      const t0 = Date.now();
      const r = await rejectsAsync('E_BACKUP_FAILED', () => d.restore(file));
      assert.match(r.message, /lock timeout/);
      assert.match(r.hint ?? '', /another session holds locks/);
      // The same for a role that restores without DROP OWNED (see the next test).
      pg.psql(`GRANT CREATE ON DATABASE postgres TO "${app}"`, { db: 'postgres' });
      try {
        assert.match((await rejectsAsync('E_BACKUP_FAILED', () => d.restore(file))).message, /lock timeout/);
      } finally {
        pg.psql(`REVOKE CREATE ON DATABASE postgres FROM "${app}"`, { db: 'postgres' });
      }
      const b = await rejectsAsync('E_BACKUP_FAILED', () => d.backup(backupFile(db), never));
      assert.match(b.message, /pg_dump .* failed: .*canceling statement due to statement timeout/);
      assert.match(b.hint ?? '', /another session holds a lock/);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      holder.stdin.end();
      await once(holder, 'close');
    }
    assert.equal(pg.dump(db), now);
  });

  test('a role with privileges on shared objects: no DROP OWNED (it would revoke them cluster-wide), what the backup holds is still restored', async () => {
    const db = freshDb();
    const d = driverFor(db);
    const file = backupFile(db);
    pg.psql(`GRANT CREATE ON DATABASE postgres TO "${app}"`, { db: 'postgres' });
    try {
      const before = pg.dump(db);
      await d.backup(file, never);
      pg.psql(`INSERT INTO items (name) VALUES ('new'); DROP TABLE notes; CREATE TABLE since (i int);`, { db, as: app });
      await d.restore(file);
      assert.equal(pg.psql(`SELECT has_database_privilege('${app}', 'postgres', 'CREATE')`, { db }), 't', 'the grant survives');
      assert.equal(pg.psql(`SELECT count(*) FROM items`, { db, as: app }), '3');
      pg.psql('DROP TABLE since', { db, as: app }); // --clean only: what the backup lacks stays
      assert.equal(pg.dump(db), before);
    } finally {
      pg.psql(`REVOKE CREATE ON DATABASE postgres FROM "${app}"`, { db: 'postgres' });
    }
  });

  test('a server that does not answer: the driver gives up after its timeouts and leaves no file', async () => {
    const db = freshDb();
    const d = driverFor(db, { queryMs: 400, transferMs: 600 });
    const file = backupFile(db);
    process.kill(pg.pid, 'SIGSTOP'); // the postmaster accepts no new connection
    try {
      const e = await rejectsAsync('E_BACKUP_FAILED', () => d.exists());
      assert.match(e.message, /^cannot reach the database .*: error: no answer within 0\.4 s$/);
      const b = await rejectsAsync('E_BACKUP_FAILED', () => d.backup(file, never));
      assert.match(b.message, /^the backup of .* was stopped: it did not finish within 0\.6 s$/);
      assert.equal(existsSync(file), false);
    } finally {
      process.kill(pg.pid, 'SIGCONT');
    }
    assert.equal(await d.exists(), true);
  });

  test('a rehearsal copy: the app can migrate it, the live database is only read, drop() removes it', async () => {
    const db = freshDb(100);
    const d = driverFor(db);
    const live = pg.dump(db);
    const copy = await d.scratchCopy(work, never);
    const url = copy.env.DATABASE_URL ?? '';
    const scratch = decodeURIComponent(/^postgresql:\/\/\/([^?]+)\?/.exec(url)?.[1] ?? '');
    assert.match(scratch, new RegExp(`^${db}_cutover_rehearsal_[0-9a-f]{8}$`));
    assert.equal(url, pg.url(scratch));
    assert.equal(pg.dump(scratch), live, 'the same content, owned by the app');

    pg.psql(`ALTER TABLE items ADD COLUMN migrated int; UPDATE items SET migrated = id; DROP TABLE notes;`, { db: scratch, as: app });
    assert.equal(pg.dump(db), live);

    await copy.drop();
    await copy.drop();
    assert.equal(pg.psql(`SELECT count(*) FROM pg_database WHERE datname = '${scratch}'`, { db: 'postgres' }), '0');
  });

  test('a rehearsal needs CREATEDB: without it the error says so', async () => {
    const other = createAccount();
    try {
      pg.createRole(other);
      pg.createDatabase('nocreatedb', other);
      const d = postgresDriver({ url: pg.url('nocreatedb'), user: { name: other, ...idsOf(other) } });
      const e = await rejectsAsync('E_BACKUP_FAILED', () => d.scratchCopy(work, never));
      assert.match(
        e.message,
        /cannot create the scratch database nocreatedb_cutover_rehearsal_[0-9a-f]{8} for the rehearsal as cutover-t\w+: .*permission denied/,
      );
      assert.match(e.hint ?? '', /CREATEDB/);
    } finally {
      pg.psql(`DROP DATABASE nocreatedb; DROP ROLE "${other}";`, { db: 'postgres' });
      removeAccount(other);
    }
  });

  test('a password in the URL: the tools connect with the URL without it', async () => {
    const db = freshDb();
    const url = `postgresql://${app}:s3cret@/${db}?host=${encodeURIComponent(pg.socketDir)}`;
    const d = postgresDriver({ url, user });
    assert.equal(d.describe, `postgresql://${app}@/${db}?host=${encodeURIComponent(pg.socketDir)}`);
    assert.equal(await d.exists(), true);
    const file = backupFile(db);
    await d.backup(file, never);
    await d.check(file);
  });

  const fsAvail = smallFsAvailable();
  test('ENOSPC while writing the backup: E_BACKUP_FAILED and no partial file', { skip: fsAvail.ok ? false : fsAvail.why }, async () => {
    const db = freshDb(20_000);
    const dir = path.join(work, 'small');
    const fs = await startSmallFs(dir, { bytes: 64 * 1024 });
    try {
      chmodSync(dir, 0o700);
      // Node in the small filesystem's mount namespace runs the backup and reports what happened.
      const script = `
        import { existsSync, readdirSync } from 'node:fs';
        const { postgresDriver } = await import(process.env.DRIVER);
        const d = postgresDriver({ url: process.env.URL, user: JSON.parse(process.env.RUNUSER) });
        const file = process.env.DIR + '/b.dump';
        let error;
        try { await d.backup(file, new AbortController().signal); } catch (e) { error = { code: e.code, message: e.message, hint: e.hint }; }
        console.log(JSON.stringify({ error, left: readdirSync(process.env.DIR), exists: existsSync(file) }));`;
      const r = await fs.exec(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], {
        DRIVER,
        URL: pg.url(db),
        RUNUSER: JSON.stringify(user),
        DIR: dir,
      });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { error?: { code: string; message: string; hint: string }; left: string[]; exists: boolean };
      assert.equal(out.error?.code, 'E_BACKUP_FAILED');
      assert.match(out.error.message, /^no space left writing the backup \S+b\.dump of postgresql:/);
      assert.match(out.error.hint, /free disk space/);
      assert.deepEqual(out.left, []);
      assert.equal(out.exists, false);
    } finally {
      fs.stop();
    }
  });

  test('the backup file is streamed, so a dump larger than any buffer still round-trips', async () => {
    const db = freshDb(20_000);
    pg.psql(`INSERT INTO notes (item, body) SELECT 1, md5(random()::text) || md5(random()::text) FROM generate_series(1, 50000) g;`, { db, as: app });
    const d = driverFor(db);
    const file = backupFile(db);
    const before = pg.dump(db);
    await d.backup(file, never);
    assert.ok(statSync(file).size > 1024 * 1024, `a sizeable dump (${statSync(file).size} bytes)`);
    pg.psql('TRUNCATE notes', { db, as: app });
    await d.restore(file);
    assert.equal(pg.dump(db), before);
  });
});
