/**
 * `npm run demo`: the whole operator experience on this machine, with nothing to set up.
 *
 * Starts a local HTTPS release server (its own CA) and a local Sigstore instance (real crypto,
 * offline), publishes signed releases of an app called `demo` with a SQLite database, and drives
 * the real cutover CLI against a sandbox install root: install, dry-run, update, a schema change
 * with its backup and migration, a refused rollback, `rollback --restore`, status, list; then, as
 * root, the same upgrade with the app's units running under a private systemd (demo-services.ts).
 * Pass `--keep` to leave the first sandbox on disk to look at.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { createAccount, removeAccount } from '../test/helpers/accounts.ts';
import { World } from '../test/helpers/world.ts';
import { servicesDemo } from './demo-services.ts';
import { show, stepsIn } from './demo-steps.ts';

const keep = process.argv.includes('--keep');
const w = await World.create();
// Migrations never run as root: as root the demo makes an account for the app, else it is you.
const root = process.getuid?.() === 0;
const account = root ? createAccount('cutover-demo') : userInfo().username;
const haveSqlite = spawnSync('sqlite3', ['-version']).status === 0;
const db = path.join(w.root, 'runtime', 'data', 'demo.db');

/** The demo app's migration: idempotent, one schema level at a time (PRAGMA user_version). */
function migration(schema: number, sql: string): string {
  return `#!/bin/sh
set -eu
mkdir -p "$(dirname "$CUTOVER_DATABASE")"
v=$(sqlite3 "$CUTOVER_DATABASE" 'PRAGMA user_version;')
if [ "$v" -lt ${schema} ]; then
  echo "applying schema ${schema}: ${sql}"
  sqlite3 "$CUTOVER_DATABASE" "BEGIN; ${sql}; PRAGMA user_version=${schema}; COMMIT;"
fi
`;
}

function sql(q: string): void {
  const r = spawnSync('sqlite3', [db, q], { encoding: 'utf8' });
  process.stdout.write(`\n$ sqlite3 ${path.relative(w.dir, db)} "${q}"\n`);
  show(r.stdout + r.stderr);
}

const { step, failed } = stepsIn(w);
let servicesOk = true;

try {
  chmodSync(w.dir, 0o755);
  const data = haveSqlite ? `\n[database]\nkind = "sqlite"\npath = "runtime/data/demo.db"\n\n[backup]\nkeep = 3\n` : '';
  w.writeConfig({ top: `user = "${account}"`, trust: data });
  const v1: Record<string, string> = haveSqlite ? { 'bin/migrate': migration(1, 'CREATE TABLE notes(body TEXT)') } : {};
  const schema1 = haveSqlite ? { manifest: { schema: 1, migrate: ['bin/migrate'] } } : {};
  await w.publish('1.0.0', { files: { 'bin/demo': '#!/bin/sh\necho "demo 1.0.0"\n', ...v1 }, ...schema1 });
  await w.publish('1.1.0', { files: { 'bin/demo': '#!/bin/sh\necho "demo 1.1.0"\n', ...v1 }, ...schema1 });
  // A release built from a branch, not a tag: same repo, different identity.
  await w.publish('1.2.0-rc.1', {
    sign: { identity: 'https://github.com/acme/demo/.github/workflows/release.yml@refs/heads/main' },
  });
  process.stdout.write(
    [
      'cutover demo',
      `  release server: ${w.server.origin}/demo/index.json (HTTPS, test CA)`,
      `  signatures:     Sigstore bundles minted by a local CA, CT log, transparency log and TSA`,
      `  identity:       https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}`,
      `  install root:   ${w.root}`,
      `  config:         ${w.configFile}`,
    ].join('\n') + '\n',
  );
  await step('Install the first release (its migration creates the database, as the app user)', ['update', '--version', 'v1.0.0']);
  await step('What would the next update do? (downloads and verifies in TMPDIR; changes nothing)', ['update', '--dry-run']);
  await step('Update to the newest release', ['update']);
  await step('Status', ['status']);
  await step('A release signed by the wrong workflow is refused', ['update', '--version', 'v1.2.0-rc.1'], 3);
  await step('Something went wrong? Roll back', ['rollback']);
  await step('Status after the rollback', ['status']);
  if (haveSqlite) {
    sql("INSERT INTO notes VALUES ('written on v1.1.0')");
    await w.publish('2.0.0', {
      files: { 'bin/demo': '#!/bin/sh\necho "demo 2.0.0"\n', 'bin/migrate': migration(2, 'ALTER TABLE notes ADD COLUMN tag TEXT') },
      manifest: { schema: 2, migrate: ['bin/migrate'] },
    });
    await step('Forward to v1.1.0 again (retained: a switch only)', ['update', '--version', 'v1.1.0']);
    await step('v2.0.0 adds a column: the dry run shows the schema change, the backup and the migration', ['update', '--version', 'v2.0.0', '--dry-run']);
    await step('Update: stop, back up, switch, migrate, start, record the schema', ['update', '--version', 'v2.0.0']);
    sql("INSERT INTO notes VALUES ('written on v2.0.0', 'new')");
    await step('Roll back onto schema 1? Refused: the database has left it', ['rollback'], 3);
    await step('Roll back with the data: the backup taken when v1.1.0 was left', ['rollback', '--restore', '--yes']);
    sql('SELECT * FROM notes');
    await step('The backups (what the restore replaced is kept too)', ['backups']);
  } else {
    process.stdout.write('\n# (the database part needs sqlite3: apt-get install sqlite3)\n');
  }
  await step('Retained releases', ['list']);
  servicesOk = await servicesDemo(root ? account : undefined);
  process.stdout.write(`\n${failed() || !servicesOk ? 'demo FAILED' : 'demo finished: every step behaved as expected'}\n`);
} finally {
  if (root && !keep) removeAccount(account);
  if (keep) {
    process.stdout.write(`sandbox kept at ${w.dir}\n`);
    await w.server.close();
    await w.sigstore.close();
  } else {
    await w.close();
  }
}
process.exitCode = failed() || !servicesOk ? 1 : 0;
