/**
 * The whole upgrade with a real PostgreSQL (Debian's, started for this test as an account it
 * creates, on a socket in a temp directory): migrations as the app's own role, pg_dump backups,
 * a failed migration put back exactly, a rehearsal on a scratch database, rollback --restore.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAccount, removeAccount } from '../helpers/accounts.ts';
import { postgresAvailable, startPostgres, type Postgres } from '../helpers/postgres.ts';
import { lastLine, World } from '../helpers/world.ts';

const avail = postgresAvailable();

/** An idempotent migration to `schema` (a one-row table tracks the level), through psql as the app's role. */
function migration(schema: number, sql: string, tail = ''): string {
  return `#!/bin/sh
set -eu
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 --dbname="$DATABASE_URL" -c "$1"; }
q "CREATE TABLE IF NOT EXISTS schema_level(n int NOT NULL)"
v=$(q "SELECT coalesce(max(n), 0) FROM schema_level")
if [ "$v" -lt ${schema} ]; then q "BEGIN; ${sql}; DELETE FROM schema_level; INSERT INTO schema_level VALUES (${schema}); COMMIT;"; fi
${tail}
`;
}

describe('updates with a PostgreSQL database', { skip: avail.ok ? false : avail.why }, () => {
  let w: World;
  let pg: Postgres;
  let account: string;
  const dump = (): string => pg.dump('demo');
  const current = (): string => (JSON.parse(readFileSync(path.join(w.root, 'current', 'release.json'), 'utf8')) as { version: string }).version;
  const json = (s: string): Record<string, unknown> => JSON.parse(lastLine(s)) as Record<string, unknown>;

  before(async () => {
    account = createAccount();
    pg = await startPostgres();
    pg.createRole(account, { createdb: true });
    pg.createDatabase('demo', account);
    w = await World.create();
    chmodSync(w.dir, 0o755);
    w.writeConfig({ top: `user = "${account}"`, trust: `\n[database]\nkind = "postgres"\nurl = "${pg.url('demo')}"\n` });
    await w.publish('1.0.0', {
      files: { 'bin/migrate': migration(1, 'CREATE TABLE notes(id serial PRIMARY KEY, body text)') },
      manifest: { schema: 1, migrate: ['bin/migrate'] },
    });
    await w.publish('2.0.0', {
      files: { 'bin/migrate': migration(2, 'CREATE TABLE tags(id serial PRIMARY KEY, note int REFERENCES notes(id))') },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
  });
  after(async () => {
    await w?.close();
    await pg?.stop();
    if (account) removeAccount(account);
  });

  test('a first install migrates as the app role; an update backs up with pg_dump and migrates', async () => {
    let r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    pg.psql("INSERT INTO notes(body) VALUES ('kept')", { db: 'demo', as: account });
    r = await w.run(['update', '--version', 'v2.0.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout).schema, { from: 1, to: 2 });
    // The database existed before the first install (created empty by the operator): it was backed up too.
    const list = json((await w.run(['backups', '--json'])).stdout).backups as Array<{ file: string; reason: string }>;
    assert.deepEqual(
      list.map((b) => b.reason),
      ['first-install', 'update'],
    );
    assert.match(list[1]!.file, /-v1\.0\.0\.dump$/);
    assert.equal(pg.psql("SELECT to_regclass('tags') IS NOT NULL", { db: 'demo' }).trim(), 't');
  });

  test('--rehearse migrates a scratch copy (dropped afterwards); the live database is only read', async () => {
    await w.publish('3.0.0', {
      files: { 'bin/migrate': migration(3, 'ALTER TABLE notes ADD COLUMN tag text') },
      manifest: { schema: 3, migrate: ['bin/migrate'] },
    });
    const before = dump();
    const r = await w.run(['update', '--version', 'v3.0.0', '--dry-run', '--rehearse', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(json(r.stdout).rehearsed);
    assert.equal(dump(), before);
    assert.equal(pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%rehearsal%'", { db: 'demo' }).trim(), '0');
  });

  test('a migration that applies part of its work and fails: the database is exactly as before (full dump), exit 8', async () => {
    await w.publish('3.1.0', {
      files: {
        'bin/migrate': migration(
          3,
          'ALTER TABLE notes ADD COLUMN tag text',
          `q "INSERT INTO notes(body) VALUES ('half-done')"\necho 'migration 3 failed' >&2\nexit 2`,
        ),
      },
      manifest: { schema: 3, migrate: ['bin/migrate'] },
    });
    const before = dump();
    const r = await w.run(['update', '--version', 'v3.1.0']);
    assert.equal(r.code, 8, r.stderr);
    assert.match(lastLine(r.stderr), /E_MIGRATE_FAILED: .*restored the database from backup \S+-v2\.0\.0/);
    assert.equal(dump(), before);
    assert.equal(current(), '2.0.0');
  });

  test('rollback refused onto schema 1; --restore --yes puts the v1 data back, owned by the app role', async () => {
    let r = await w.run(['rollback']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_ROLLBACK_SCHEMA/);
    r = await w.run(['rollback', '--restore', '--yes']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(current(), '1.0.0');
    assert.equal(pg.psql('SELECT body FROM notes', { db: 'demo', as: account }).trim(), 'kept');
    assert.equal(pg.psql("SELECT to_regclass('tags') IS NULL", { db: 'demo' }).trim(), 't', 'what v2 added is gone');
    pg.psql("INSERT INTO notes(body) VALUES ('after the restore')", { db: 'demo', as: account });
  });
});
