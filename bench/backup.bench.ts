/**
 * `npm run bench:backup`: what a database backup costs. A SQLite database of --mib MiB (default
 * 256, random rows), backed up by `cutover backup` (SQLite's online backup API through
 * node:sqlite, then integrity_check, then sha256 of the file) against the baseline an operator
 * would script: `sqlite3 db ".backup out"`, `sqlite3 out "PRAGMA integrity_check"`, `sha256sum out`.
 * Rounds alternate who goes first; the report gives medians, their ratio, and peak RSS.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { CLI } from '../test/helpers/cli.ts';
import { measure } from './measure.ts';
import { max, median, mib, secs, table } from './stats.ts';

const { values } = parseArgs({ options: { mib: { type: 'string' }, rounds: { type: 'string' } } });
const size = Number(values.mib ?? 256);
const rounds = Number(values.rounds ?? 3);
if (spawnSync('sqlite3', ['-version']).status !== 0) {
  throw new Error('bench:backup needs sqlite3 (apt-get install sqlite3) for its baseline');
}

const dir = mkdtempSync(path.join(tmpdir(), 'cutover-bench-backup-'));
try {
  const root = path.join(dir, 'root');
  const live = path.join(root, 'runtime', 'data', 'app.db');
  spawnSync('mkdir', ['-p', path.dirname(live), path.join(root, 'releases'), path.join(root, '.cutover')]);
  const db = new DatabaseSync(live);
  db.exec('PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)');
  const rows = size * 16;
  db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows}) INSERT INTO t(body) SELECT randomblob(65000) FROM n`);
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  db.close();
  const config = path.join(dir, 'cutover.toml');
  writeFileSync(
    config,
    `app = "bench"\nroot = "${root}"\n[source]\nindex = "https://127.0.0.1:9/index.json"\n[trust]\nidentity = "x"\nissuer = "y"\n[database]\nkind = "sqlite"\npath = "${live}"\n[backup]\nkeep = 0\n`,
  );
  const rss = path.join(dir, 'rss');
  // With the launcher's own V8 flags (bin/cutover), on the TypeScript sources.
  const cutover = () =>
    measure(process.execPath, ['--max-semi-space-size=1', '--no-turbofan', '--disable-warning=ExperimentalWarning', CLI, '--config', config, 'backup'], {
      rssFile: rss,
    });
  const baseline = async () => {
    const out = path.join(dir, 'baseline.db');
    rmSync(out, { force: true });
    return measure(
      'sh',
      ['-c', `sqlite3 "$1" ".backup '$2'" && sqlite3 "$2" "PRAGMA integrity_check" >/dev/null && sha256sum "$2" >/dev/null`, 'sh', live, out],
      {
        rssFile: rss,
      },
    );
  };
  const samples: Record<'cutover' | 'baseline', Array<{ ms: number; kib: number }>> = { cutover: [], baseline: [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (['cutover', 'baseline'] as const) : (['baseline', 'cutover'] as const);
    for (const who of order) {
      const m = await (who === 'cutover' ? cutover() : baseline());
      if (m.code !== 0) throw new Error(`${who} failed: ${m.stderr}`);
      samples[who].push({ ms: m.wallMs, kib: m.peakRssKiB });
      process.stderr.write(`round ${r + 1}/${rounds} ${who.padEnd(8)} ${secs(m.wallMs)} ${mib(m.peakRssKiB)}\n`);
    }
  }
  const med = (who: 'cutover' | 'baseline') => median(samples[who].map((s) => s.ms));
  process.stdout.write(
    `\nSQLite backup of ${size} MiB (${rounds} rounds, medians)\n${table(
      ['contestant', 'wall', 'peak RSS'],
      (['cutover', 'baseline'] as const).map((w) => [w, secs(med(w)), mib(max(samples[w].map((s) => s.kib)))]),
    )}\nratio cutover/baseline: ${(med('cutover') / med('baseline')).toFixed(2)}\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
