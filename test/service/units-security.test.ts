/**
 * The example app units are a model vendors copy: `systemd-analyze security` (offline, on the
 * files as shipped) must rate them, like the daemon's own unit, no worse than "OK".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/cli.ts';

const have = spawnSync('systemd-analyze', ['--version']).status === 0;

for (const unit of ['demo.service', 'demo-worker.service', 'cutover-daemon.service']) {
  test(`systemd-analyze security rates ${unit} OK (exposure at most 3.0)`, { skip: have ? false : 'systemd-analyze is not installed' }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cutover-units-'));
    try {
      copyFileSync(path.join(REPO, 'systemd', unit), path.join(dir, unit));
      const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', path.join(dir, unit)], { encoding: 'utf8' });
      const m = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(r.stdout);
      assert.ok(m, r.stdout + r.stderr);
      console.log(`# measured: ${unit} exposure ${m[1]} ${m[2]}`);
      assert.ok(Number(m[1]) <= 3.0, `${unit} scores ${m[1]} ${m[2]}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
