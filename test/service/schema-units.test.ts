/**
 * A schema change under a real systemd, with the shipped units as the app's real account: the
 * units stop in reverse order, the migration runs while both are down, they start in order, the
 * gate passes; and a release that migrates and then fails its gate gets its data put back.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAccount } from '../helpers/accounts.ts';
import { APP, cliIn, freePort, stopAll, unitsConfig, health, unitFrom } from '../helpers/app-units.ts';
import { startSystemd, systemdAvailable, type Systemd } from '../helpers/systemd.ts';
import { lastLine, World } from '../helpers/world.ts';

const avail = systemdAvailable();
const haveSqlite = spawnSync('sqlite3', ['-version']).status === 0;
const skip = !avail.ok ? avail.why : !haveSqlite ? 'sqlite3 is not installed' : false;

/** Records that it ran in runtime/events (beside the units' own start and stop lines), then migrates. */
function migration(schema: number, sql: string): string {
  return `#!/bin/sh
set -eu
dir=$(dirname "$CUTOVER_DATABASE")
mkdir -p "$dir"
echo migrate >> "$dir/../events"
v=$(sqlite3 "$CUTOVER_DATABASE" 'PRAGMA user_version;')
if [ "$v" -lt ${schema} ]; then sqlite3 "$CUTOVER_DATABASE" "BEGIN; ${sql}; PRAGMA user_version=${schema}; COMMIT;"; fi
`;
}

describe('a schema change around real systemd units', { skip }, () => {
  let sd: Systemd;
  let w: World;
  let port = 0;
  let account = '';
  let db = '';
  const sql = (q: string): string => spawnSync('sqlite3', [db, q], { encoding: 'utf8' }).stdout.trim();
  const publish = (version: string, schema: number, change: string, behaviour?: object) =>
    w.publish(version, {
      files: { 'server.mjs': APP, 'bin/migrate': migration(schema, change), ...(behaviour ? { 'behaviour.json': JSON.stringify(behaviour) } : {}) },
      manifest: { schema, migrate: ['bin/migrate'] },
    });

  before(async () => {
    account = createAccount();
    sd = await startSystemd();
    w = await World.create({ base: sd.workDir });
    chmodSync(w.dir, 0o755);
    db = path.join(w.root, 'runtime', 'data', 'demo.db');
    w.runner = cliIn(sd);
    port = await freePort();
    w.writeConfig({
      top: `${unitsConfig(account, port)}
[database]
kind = "sqlite"
path = "runtime/data/demo.db"
`,
    });
    sd.writeUnit('demo.service', unitFrom('demo.service', w.root, port, account));
    sd.writeUnit('demo-worker.service', unitFrom('demo-worker.service', w.root, port, account));
    await sd.daemonReload();
    await publish('1.0.0', 1, 'CREATE TABLE notes(body TEXT)');
    const r = await w.run(['update', '--version', '1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    sql("INSERT INTO notes VALUES ('v1')");
  });
  after(() => stopAll(sd, w, account));

  test('stop worker then app, migrate while both are down, start app then worker, gate', async () => {
    await publish('2.0.0', 2, 'ALTER TABLE notes ADD COLUMN tag TEXT');
    const r = await w.run(['update', '--version', '2.0.0']);
    assert.equal(r.code, 0, r.stderr);
    const events = readFileSync(path.join(w.root, 'runtime', 'events'), 'utf8')
      .trim()
      .split('\n');
    assert.deepEqual(events.slice(events.lastIndexOf('worker stop v1.0.0')), [
      'worker stop v1.0.0',
      'app stop v1.0.0',
      'migrate',
      'app start v2.0.0',
      'worker start v2.0.0',
    ]);
    assert.deepEqual(await health(port), { status: 200, version: '2.0.0' });
    assert.equal(sql('PRAGMA user_version'), '2');
  });

  test('a release that migrates and then fails its gate: units stopped, data restored, v2 started again and healthy (exit 8)', async () => {
    await publish('3.0.0', 3, 'CREATE TABLE extra(x)', { health: 500 });
    const before = sql('.dump');
    const r = await w.run(['update', '--version', '3.0.0']);
    assert.equal(r.code, 8, r.stderr);
    const line = lastLine(r.stderr);
    assert.match(line, /E_UNHEALTHY: v3\.0\.0 was unhealthy/);
    assert.match(line, /restored the database from backup \S+ \(what v3\.0\.0 wrote while it ran was discarded\)/);
    assert.match(line, /started demo\.service, demo-worker\.service on v2\.0\.0, which is healthy again/);
    assert.equal(sql('.dump'), before);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v2.0.0');
    assert.deepEqual(await health(port), { status: 200, version: '2.0.0' });
  });
});
