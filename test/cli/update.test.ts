import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { acquireLock } from '../../src/state/lock.ts';
import { entriesOf } from '../helpers/cli.ts';
import { lastLine, World } from '../helpers/world.ts';

function json(stdout: string): Record<string, unknown> {
  return JSON.parse(lastLine(stdout)) as Record<string, unknown>;
}

describe('update, rollback, status, list, gc against a real HTTPS server and real bundles', () => {
  let w: World;
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0');
  });
  after(async () => {
    await w.close();
  });

  test('first install: verified, extracted, current switched, runtime linked', async () => {
    const r = await w.run(['update', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = json(r.stdout);
    assert.equal(out.ok, true);
    assert.equal(out.to, '1.0.0');
    assert.equal(out.from, null);
    assert.equal((out.verified as { identity: string }).identity, 'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v1.0.0');
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');
    const rel = JSON.parse(readFileSync(path.join(w.root, 'current', 'release.json'), 'utf8')) as { version: string };
    assert.equal(rel.version, '1.0.0');
    assert.equal(readlinkSync(path.join(w.root, 'releases', 'v1.0.0', 'runtime')), '../../runtime');
    assert.ok(lstatSync(path.join(w.root, 'runtime')).isDirectory());
    assert.deepEqual(entriesOf(path.join(w.root, '.cutover', 'staging')), []);
    assert.match(r.stderr, /Verifying Sigstore signature/);
  });

  test('the same version again is a no-op that says so', async () => {
    const before = w.snapshot();
    const r = await w.run(['update', '--version', 'v1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /already current/);
    assert.deepEqual(w.snapshot(), before);
  });

  test('dry-run downloads and verifies in TMPDIR, prints the plan, writes nothing under root', async () => {
    await w.publish('1.1.0', { files: { 'bin/demo': 'v1.1.0' } });
    const tmp = path.join(w.dir, 'tmp');
    mkdirSync(tmp);
    const before = w.snapshot();
    const stateBefore = readdirSync(path.join(w.root, '.cutover')).sort();
    const history = readFileSync(path.join(w.root, '.cutover', 'history.jsonl'), 'utf8');
    const r = await w.run(['update', '--dry-run'], { TMPDIR: tmp });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /current: +v1\.0\.0/);
    assert.match(r.stdout, /target: +v1\.1\.0/);
    assert.match(r.stdout, /signed: +https:\/\/github\.com\/acme\/demo/);
    assert.deepEqual(w.snapshot(), before);
    assert.deepEqual(readdirSync(path.join(w.root, '.cutover')).sort(), stateBefore);
    assert.equal(readFileSync(path.join(w.root, '.cutover', 'history.jsonl'), 'utf8'), history);
    assert.deepEqual(readdirSync(tmp), [], 'dry-run scratch removed');
  });

  test('dry-run --json lists the steps update would run; update --json ran the same kinds in the same order', async () => {
    const tmp = path.join(w.dir, 'tmp-steps');
    mkdirSync(tmp);
    const dry = await w.run(['update', '--dry-run', '--json', '--version', '1.1.0'], { TMPDIR: tmp });
    assert.equal(dry.code, 0, dry.stderr);
    const planned = json(dry.stdout).steps as Array<{ kind: string; outcome: string }>;
    assert.deepEqual(
      planned.map((x) => `${x.kind}:${x.outcome}`),
      ['fetch-bundle:done', 'verify:done', 'stage:done', 'install:planned', 'switch:planned'],
    );
    const human = await w.run(['update', '--dry-run', '--version', '1.1.0'], { TMPDIR: tmp });
    assert.match(human.stdout, /^ +4\. install +releases\/v1\.1\.0 +planned$/m);
    assert.match(human.stdout, /^ +5\. switch +current v1\.0\.0 -> v1\.1\.0 +planned$/m);
    const r = await w.run(['update', '--json', '--version', '1.1.0']);
    assert.equal(r.code, 0, r.stderr);
    const ran = json(r.stdout).steps as Array<{ kind: string; outcome: string; ms: number }>;
    assert.deepEqual(
      ran.map((x) => x.kind),
      planned.map((x) => x.kind),
    );
    assert.ok(
      ran.every((x) => x.outcome === 'done' && Number.isInteger(x.ms) && x.ms >= 0),
      JSON.stringify(ran),
    );
    const history = readFileSync(path.join(w.root, '.cutover', 'history.jsonl'), 'utf8')
      .trim()
      .split('\n');
    const last = JSON.parse(history[history.length - 1]!) as { steps: Array<{ kind: string; ms: number }> };
    assert.deepEqual(
      last.steps.map((x) => x.kind),
      planned.map((x) => x.kind),
      'the journal keeps each step with its timing',
    );
    // Back to where the other tests expect to be.
    const back = await w.run(['rollback', '--to', 'v1.0.0']);
    assert.equal(back.code, 0, back.stderr);
  });

  test('runtime/ survives updates untouched; no --version installs the newest stable', async () => {
    w.mkdirRuntime();
    const runtimeBefore = w.snapshot().filter((l) => l.includes(' runtime'));
    await w.publish('1.2.0-rc.1');
    const r = await w.run(['update', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(json(r.stdout).to, '1.1.0');
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.1.0');
    assert.deepEqual(
      w.snapshot().filter((l) => l.includes(' runtime')),
      runtimeBefore,
    );
    assert.equal(readFileSync(path.join(w.root, 'current', 'runtime', 'data', 'app.db'), 'utf8'), 'operator data');
  });

  test('an older version is refused (exit 3) unless --allow-downgrade', async () => {
    const before = w.snapshot();
    const r = await w.run(['update', '--version', '1.0.0']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /E_DOWNGRADE/);
    assert.deepEqual(w.snapshot(), before);
  });

  test('status and list report what is installed', async () => {
    const s = await w.run(['status', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const st = json(s.stdout);
    assert.equal(st.current, '1.1.0');
    assert.equal(st.previous, '1.0.0');
    assert.deepEqual(st.installed, ['1.1.0', '1.0.0']);
    const l = await w.run(['list']);
    assert.equal(l.code, 0);
    assert.match(l.stdout, /\* v1\.1\.0 .*\(current\)/);
    assert.match(l.stdout, /v1\.0\.0 .*\(previous\)/);
  });

  test('rollback returns to the previous release; rollback again goes forward', async () => {
    let r = await w.run(['rollback']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');
    r = await w.run(['rollback', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(json(r.stdout).to, '1.1.0');
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.1.0');
  });

  test('rollback --to a release that is not retained: exit 6, nothing changed', async () => {
    const before = w.snapshot();
    const r = await w.run(['rollback', '--to', 'v0.9.0']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /E_NOT_INSTALLED: v0\.9\.0 is not installed.*retained releases: v1\.1\.0, v1\.0\.0/);
    assert.deepEqual(w.snapshot(), before);
  });

  test('keep is honoured: old releases pruned, never current or previous', async () => {
    await w.publish('1.3.0');
    await w.publish('1.4.0');
    assert.equal((await w.run(['update', '--version', '1.3.0'])).code, 0);
    const r = await w.run(['update', '--version', '1.4.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    // keep = 2 besides current: previous (1.3.0) and the next highest (1.1.0).
    assert.deepEqual(json(r.stdout).pruned, ['1.0.0']);
    assert.deepEqual(readdirSync(path.join(w.root, 'releases')).sort(), ['v1.1.0', 'v1.3.0', 'v1.4.0']);
    const gc = await w.run(['gc', '--keep', '1', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(json(gc.stdout).pruned, ['1.1.0']);
    assert.deepEqual(readdirSync(path.join(w.root, 'releases')).sort(), ['v1.3.0', 'v1.4.0']);
    assert.deepEqual(entriesOf(path.join(w.root, '.cutover', 'trash')), []);
  });

  test('rollback --to a retained release works and is recorded', async () => {
    const r = await w.run(['rollback', '--to', 'v1.3.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.3.0');
    const hist = readFileSync(path.join(w.root, '.cutover', 'history.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.match(hist[hist.length - 1] ?? '', /"op":"rollback","from":"1.4.0","to":"1.3.0","result":"ok"/);
    assert.equal((await w.run(['update', '--version', '1.4.0'])).code, 0);
  });

  test('a second operation while one holds the lock exits 7 at once', async () => {
    const lock = acquireLock(path.join(w.root, '.cutover', 'lock'), 'update');
    try {
      const started = Date.now();
      const r = await w.run(['rollback']);
      assert.equal(r.code, 7);
      assert.match(r.stderr, new RegExp(`E_LOCKED: .*pid ${process.pid}`));
      assert.ok(Date.now() - started < 5000);
    } finally {
      lock.release();
    }
  });

  test('usage and config errors exit 2 with one line', async () => {
    const r = await w.run(['update', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^demo: E_USAGE: unknown option '--bogus'/);
    const m = await w.run(['status'], {});
    assert.equal(m.code, 0);
    const missing = await (await import('../helpers/cli.ts')).runCli(['--config', '/nonexistent.toml', 'status']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /E_CONFIG_MISSING: no config file at \/nonexistent\.toml/);
    assert.ok(!existsSync('/nonexistent.toml'));
  });
});
