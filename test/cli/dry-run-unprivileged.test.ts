import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, entriesOf, type RunResult } from '../helpers/cli.ts';
import { World } from '../helpers/world.ts';
import { spawn } from 'node:child_process';

const NOBODY = 65534;
const root = process.getuid?.() === 0;

/** dry-run needs read access only: run it as `nobody` against a root-owned install. */
describe('update --dry-run as an unprivileged user', { skip: root ? false : 'needs root to switch to the nobody user' }, () => {
  let w: World;
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0');
    assert.equal((await w.run(['update'])).code, 0);
    await w.publish('1.1.0');
    chmodSync(w.dir, 0o755);
  });
  after(async () => {
    await w.close();
  });

  function runAsNobody(args: string[], env: Record<string, string>): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, '--config', w.configFile, ...args], {
        uid: NOBODY,
        gid: NOBODY,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CUTOVER_PROG: 'demo', ...env },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  test('it verifies and plans without being able to write anything under the root', async () => {
    const tmp = path.join(w.dir, 'nobody-tmp');
    mkdirSync(tmp, { mode: 0o700 });
    chownSync(tmp, NOBODY, NOBODY);
    const before = w.snapshot();
    const state = readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8');
    const r = await runAsNobody(['update', '--dry-run', '--json'], { TMPDIR: tmp });
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { dryRun: boolean; from: string; to: string };
    assert.deepEqual([plan.dryRun, plan.from, plan.to], [true, '1.0.0', '1.1.0']);
    assert.deepEqual(w.snapshot(), before);
    assert.equal(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8'), state);
    assert.deepEqual(entriesOf(tmp), []);
  });

  test('a real update as that user fails cleanly with E_FS and changes nothing', async () => {
    const before = w.snapshot();
    const r = await runAsNobody(['update'], {});
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /E_FS: .*; run as a user that can write the install root \(usually with sudo\)/);
    assert.deepEqual(w.snapshot(), before);
  });
});
