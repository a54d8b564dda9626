/**
 * The SQLite driver on real files: consistent backups that read back, a real ENOSPC halfway
 * through a backup (a small tmpfs in a private mount namespace), corrupt backups refused, and
 * restores that keep the live file's owner and mode and drop its old -wal/-shm.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { sqliteDriver } from '../../src/database/sqlite.ts';
import { CutoverError } from '../../src/errors.ts';
import { createAccount, idsOf, removeAccount } from '../helpers/accounts.ts';
import { REPO } from '../helpers/cli.ts';
import { smallFsAvailable, startSmallFs } from '../helpers/small-fs.ts';

const is = (code: string) => (e: unknown) => e instanceof CutoverError && e.code === code;

describe('SQLite backups and restores', () => {
  let dir: string;
  let live: string;
  let account: string;
  const rows = (file: string): unknown[] => {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      return db.prepare('SELECT id, length(body) AS n FROM t ORDER BY id').all();
    } finally {
      db.close();
    }
  };

  before(() => {
    account = createAccount();
    dir = mkdtempSync(path.join(tmpdir(), 'cutover-sqlite-'));
    live = path.join(dir, 'app.db');
    const db = new DatabaseSync(live);
    db.exec('PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)');
    const ins = db.prepare('INSERT INTO t(body) VALUES (?)');
    for (let i = 0; i < 32; i++) ins.run(randomBytes(64 * 1024));
    db.close();
    const { uid, gid } = idsOf(account);
    chownSync(live, uid, gid);
    chmodSync(live, 0o640);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    removeAccount(account);
  });

  test('a backup is 0600, reads back, and holds every row', async () => {
    const drv = sqliteDriver({ path: live, user: undefined });
    const file = path.join(dir, 'b1.db');
    await drv.backup(file, new AbortController().signal);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    await drv.check(file);
    assert.deepEqual(rows(file), rows(live));
    assert.ok(!existsSync(`${file}-wal`), 'the backup stands alone (no -wal beside it)');
  });

  test('a damaged backup does not read back: E_BACKUP_CORRUPT', async () => {
    const drv = sqliteDriver({ path: live, user: undefined });
    const bad = path.join(dir, 'bad.db');
    writeFileSync(bad, randomBytes(8192));
    await assert.rejects(drv.check(bad), is('E_BACKUP_CORRUPT'));
  });

  test('a restore keeps the live file owner and mode, and removes the old -wal and -shm', async () => {
    const drv = sqliteDriver({ path: live, user: undefined });
    const file = path.join(dir, 'b2.db');
    await drv.backup(file, new AbortController().signal);
    const want = rows(live);
    const db = new DatabaseSync(live);
    db.exec('DELETE FROM t WHERE id > 3');
    db.close();
    // What a crashed app leaves beside its database (never written while one is open: -shm is mapped).
    writeFileSync(`${live}-shm`, 'stale');
    writeFileSync(`${live}-wal`, 'stale');
    await drv.restore(file);
    const st = statSync(live);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [idsOf(account).uid, idsOf(account).gid, 0o640]);
    assert.ok(!existsSync(`${live}-wal`) && !existsSync(`${live}-shm`));
    assert.deepEqual(rows(live), want);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes('cutover-restore')),
      [],
    );
  });

  const small = smallFsAvailable();
  test('ENOSPC halfway through a backup: E_BACKUP_FAILED and no partial file', { skip: small.ok ? false : small.why }, async () => {
    const mount = path.join(dir, 'small');
    const fs = await startSmallFs(mount, { bytes: 512 * 1024 });
    try {
      const script = `
        import { sqliteDriver } from ${JSON.stringify(path.join(REPO, 'src', 'database', 'sqlite.ts'))};
        const drv = sqliteDriver({ path: ${JSON.stringify(live)}, user: undefined });
        try { await drv.backup(${JSON.stringify(path.join(mount, 'b.db'))}, new AbortController().signal); console.log('no error'); }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, hint: e.hint })); }`;
      const r = await fs.exec(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim()) as { code: string; message: string; hint: string };
      assert.equal(out.code, 'E_BACKUP_FAILED', r.stdout);
      assert.match(out.hint, /free space/);
      const left = await fs.exec('ls', ['-A', mount]);
      assert.equal(left.stdout.trim(), '', 'no partial backup left on the small filesystem');
    } finally {
      fs.stop();
    }
  });
});
