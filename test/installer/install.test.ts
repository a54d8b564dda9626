import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO } from '../helpers/cli.ts';

/** The installer, run for real into a --prefix tree, with a real `tsc` build of cutover. */
describe('installer/install.sh', () => {
  let dir: string;
  let src: string;
  let prefix: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'cutover-installer-'));
    src = path.join(dir, 'src');
    prefix = path.join(dir, 'prefix');
    for (const d of ['bin', 'installer', 'systemd', 'package.json']) cpSync(path.join(REPO, d), path.join(src, d), { recursive: true });
    symlinkSync(path.join(REPO, 'node_modules'), path.join(src, 'node_modules'));
    execFileSync(path.join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', path.join(REPO, 'tsconfig.build.json'), '--outDir', path.join(src, 'dist')], {
      stdio: 'inherit',
    });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const install = (...args: string[]) => spawnSync('bash', [path.join(src, 'installer', 'install.sh'), ...args], { encoding: 'utf8' });
  const good = [
    '--app',
    'demo',
    '--root',
    '/opt/demo',
    '--index',
    'https://releases.example.com/demo/index.json',
    '--identity',
    'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}',
    '--prefix',
  ];

  test('installs cutover under the vendor name, a config and the updater unit', () => {
    const r = install(...good, prefix);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readlinkSync(path.join(prefix, 'usr/local/bin/demo')), '/opt/cutover/current/bin/cutover');
    assert.equal(readlinkSync(path.join(prefix, 'opt/cutover/current')), '0.1.0');
    const cfg = readFileSync(path.join(prefix, 'etc/demo/cutover.toml'), 'utf8');
    assert.match(cfg, /^app {2}= "demo"$/m);
    assert.match(cfg, /identity = "https:\/\/github\.com\/acme\/demo\/\.github\/workflows\/release\.yml@refs\/tags\/v\{version\}"/);
    const unit = readFileSync(path.join(prefix, 'etc/systemd/system/demo-updater.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/demo daemon$/m);
    assert.match(unit, /^ReadWritePaths=\/opt\/demo$/m);
    // The installed copy runs (built dist, bundled Node 22) and calls itself by the vendor name.
    const bin = path.join(dir, 'demo');
    symlinkSync(path.join(prefix, 'opt/cutover/current/bin/cutover'), bin);
    const st = spawnSync(bin, ['--config', path.join(prefix, 'etc/demo/cutover.toml'), 'status', '--json'], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin' },
    });
    assert.equal(st.status, 0, st.stderr);
    assert.equal((JSON.parse(st.stdout) as { app: string; current: unknown }).current, null);
    const help = spawnSync(bin, ['--help'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    assert.match(help.stdout, /^Usage: demo /m);
  });

  test('a second run keeps the operator config and is idempotent', () => {
    const cfg = path.join(prefix, 'etc/demo/cutover.toml');
    const before = readFileSync(cfg, 'utf8') + '# edited\n';
    writeFileSync(cfg, before);
    const r = install(...good, prefix);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(cfg, 'utf8'), before);
    assert.match(r.stderr, /exists: left as it is/);
  });

  test('bad arguments exit 2 and install nothing', () => {
    const p2 = path.join(dir, 'p2');
    for (const args of [
      ['--app', 'Bad Name'],
      ['--app', 'demo', '--root', 'relative'],
      [...good.slice(0, 4), '--index', 'http://x', '--identity', 'i'],
    ]) {
      const r = install(...args, '--prefix', p2);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^install: error: /m);
    }
    assert.equal(existsSync(p2), false);
  });

  test('shellcheck is clean', (t) => {
    const which = spawnSync('sh', ['-c', 'command -v shellcheck']);
    if (which.status !== 0) {
      t.skip('shellcheck is not installed (apt-get install shellcheck)');
      return;
    }
    const r = spawnSync('shellcheck', [path.join(REPO, 'installer', 'install.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
  });
});
