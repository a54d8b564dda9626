/**
 * The engine in-process: real HTTPS, real Sigstore bundles, real tar, a real install root on
 * disk; fake service manager, health probe and clock. Automatic rollback, failed undos, signals
 * during each waiting step, and what the journal says afterwards.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Config } from '../../src/config/config.ts';
import { runRollback } from '../../src/engine/rollback.ts';
import { runUpdate } from '../../src/engine/update.ts';
import { CutoverError } from '../../src/errors.ts';
import { readHistory } from '../../src/state/state.ts';
import { layoutOf } from '../../src/layout/paths.ts';
import { engineWorld, fakeServices, type FakeServices } from '../helpers/engine-fakes.ts';
import type { World } from '../helpers/world.ts';

function rejectsWith(code: string, exit: number) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof CutoverError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exit);
    return true;
  };
}

describe('executor: steps with undo, over the journal (in-process, fake services)', () => {
  let w: World;
  let base: Config;
  let config: Config;
  let root = '';
  let n = 0;
  let s: FakeServices;
  const current = (): string => readlinkSync(path.join(root, 'current'));
  const state = () =>
    JSON.parse(readFileSync(path.join(root, '.cutover', 'state.json'), 'utf8')) as {
      format: number;
      journal: unknown;
      previous: string | null;
      bad: string[];
      installed: Record<string, unknown>;
    };
  const update = (version: string, signal = new AbortController().signal) => runUpdate(config, s, { version, dryRun: false, allowDowngrade: true, signal });

  before(async () => {
    ({ w, config: base } = await engineWorld());
  });
  after(async () => {
    await w.close();
  });
  beforeEach(async () => {
    // Every test starts from its own root, on a healthy v1.0.0.
    root = path.join(w.dir, `root-${++n}`);
    config = { ...base, root };
    s = fakeServices(root, w.caFile);
    await update('1.0.0');
    s = fakeServices(root, w.caFile);
  });

  test('an update runs its steps in plan order, each recorded with its outcome and duration', async () => {
    const r = await update('2.0.0');
    assert.deepEqual(
      r.steps.map((x) => x.kind),
      ['preflight', 'fetch-bundle', 'verify', 'stage', 'install', 'switch', 'restart', 'restart', 'gate'],
    );
    assert.ok(r.steps.every((x) => x.outcome === 'done' && typeof x.ms === 'number'));
    assert.equal(current(), 'releases/v2.0.0');
    assert.deepEqual(s.serviceManager.restarts, ['a.service@2.0.0', 'b.service@2.0.0']);
    assert.deepEqual(s.health.gates, ['preflight@1.0.0', 'gate@2.0.0']);
    assert.equal(state().journal, null);
    assert.equal(state().format, 2);
    const last = (await readHistory(layoutOf(root), 1))[0]!;
    assert.equal(last.result, 'ok');
    assert.deepEqual(
      last.steps?.map((x) => x.kind),
      r.steps.map((x) => x.kind),
    );
  });

  test('an unhealthy release is undone: back on the old release, units restarted on it, the new one removed and marked bad (exit 8)', async () => {
    s.health.unhealthy.add('2.0.0');
    await assert.rejects(update('2.0.0'), (e: unknown) => {
      rejectsWith('E_UNHEALTHY', 8)(e);
      assert.match(
        (e as Error).message,
        /v2\.0\.0 was unhealthy \(health check failed: HTTP 500 from v2\.0\.0.*\); rolled back to v1\.0\.0, which is healthy again/,
      );
      const steps = (e as CutoverError).details?.steps as Array<{ kind: string; outcome: string }>;
      assert.deepEqual(
        steps.map((x) => `${x.kind}:${x.outcome}`),
        [
          'preflight:done',
          'fetch-bundle:done',
          'verify:done',
          'stage:undone',
          'install:undone',
          'switch:undone',
          'restart:done',
          'restart:done',
          'gate:failed',
        ],
      );
      return true;
    });
    assert.equal(current(), 'releases/v1.0.0');
    assert.deepEqual(s.serviceManager.restarts, ['a.service@2.0.0', 'b.service@2.0.0', 'a.service@1.0.0', 'b.service@1.0.0']);
    assert.equal(existsSync(path.join(root, 'releases', 'v2.0.0')), false, 'the install is undone');
    assert.deepEqual(state().bad, ['2.0.0']);
    assert.equal(state().journal, null);
    assert.equal(state().installed['2.0.0'], undefined);
  });

  test('a bad mark is cleared only by a passed gate, not by a --no-restart switch', async () => {
    s.health.unhealthy.add('2.0.0');
    await assert.rejects(update('2.0.0'), rejectsWith('E_UNHEALTHY', 8));
    s.health.unhealthy.clear();
    await runUpdate(config, s, { version: '2.0.0', dryRun: false, allowDowngrade: true, noRestart: true, signal: new AbortController().signal });
    assert.deepEqual(state().bad, ['2.0.0'], 'switched without a gate: still bad');
    await update('1.0.0');
    await update('2.0.0');
    assert.deepEqual(state().bad, [], 'healthy through its gate');
  });

  test('a unit that fails to start is undone the same way; only the units touched are restarted again', async () => {
    s.serviceManager.failing.set('a.service@2.0.0', 'failed to start (exit 1)');
    await assert.rejects(update('2.0.0'), rejectsWith('E_UNHEALTHY', 8));
    assert.deepEqual(s.serviceManager.restarts, ['a.service@2.0.0', 'a.service@1.0.0']);
    assert.equal(current(), 'releases/v1.0.0');
  });

  test('an undo that fails is exit 9 and says where the machine is', async () => {
    s.health.unhealthy.add('2.0.0');
    s.health.unhealthy.add('1.0.0');
    // Pre-flight would refuse an unhealthy v1.0.0: let it pass.
    const r = runUpdate(config, s, { version: '2.0.0', dryRun: false, allowDowngrade: false, force: true, signal: new AbortController().signal });
    await assert.rejects(r, (e: unknown) => {
      rejectsWith('E_ROLLBACK_FAILED', 9)(e);
      assert.match((e as Error).message, /v2\.0\.0 was unhealthy .*current was switched back to v1\.0\.0, but v1\.0\.0 is not healthy either/);
      assert.match((e as CutoverError).hint ?? '', /current points at releases\/v1\.0\.0; units: a\.service, b\.service/);
      assert.equal((e as CutoverError).details?.current, '1.0.0');
      return true;
    });
    assert.equal(current(), 'releases/v1.0.0');
    assert.equal(state().journal, null, 'a failed undo is recorded in history, not retried by every later command');
    assert.equal((await readHistory(layoutOf(root), 1))[0]?.code, 'E_ROLLBACK_FAILED');
  });

  test('a rollback to an unhealthy release goes back to where it was', async () => {
    await update('2.0.0');
    s.health.unhealthy.add('1.0.0');
    await assert.rejects(runRollback(config, s, { to: '1.0.0' }), rejectsWith('E_UNHEALTHY', 8));
    assert.equal(current(), 'releases/v2.0.0');
    assert.ok(state().bad.includes('1.0.0'));
    assert.deepEqual(s.serviceManager.restarts.slice(-4), ['a.service@1.0.0', 'b.service@1.0.0', 'a.service@2.0.0', 'b.service@2.0.0']);
  });

  describe('a signal during each waiting step', () => {
    test('during the pre-flight: nothing changed (exit 130)', async () => {
      const ac = new AbortController();
      s.health.onGate = async (_v, signal) => {
        ac.abort(new CutoverError('E_INTERRUPTED', 'interrupted by SIGTERM', { details: { signal: 'SIGTERM' } }));
        signal.throwIfAborted();
      };
      await assert.rejects(update('2.0.0', ac.signal), rejectsWith('E_INTERRUPTED', 130));
      assert.equal(current(), 'releases/v1.0.0');
      assert.deepEqual(s.serviceManager.restarts, []);
      assert.equal(state().journal, null);
    });

    test('during the download and extraction: staging removed, nothing installed (exit 130)', async () => {
      const ac = new AbortController();
      w.server.faults.set('demo/demo-3.0.0.tar.gz', { kind: 'hang' });
      try {
        const p = update('3.0.0', ac.signal);
        // Wait on the event: the download has started.
        while (!s.reporter.steps.some((m) => m.startsWith('Downloading'))) await new Promise((r) => setImmediate(r));
        ac.abort(new CutoverError('E_INTERRUPTED', 'interrupted by SIGINT', { details: { signal: 'SIGINT' } }));
        await assert.rejects(p, rejectsWith('E_INTERRUPTED', 130));
      } finally {
        w.server.faults.delete('demo/demo-3.0.0.tar.gz');
      }
      assert.equal(current(), 'releases/v1.0.0');
      assert.equal(existsSync(path.join(root, 'releases', 'v3.0.0')), false);
      assert.deepEqual(readdir(path.join(root, '.cutover', 'staging')), []);
      assert.equal(state().journal, null);
    });

    test('during a restart: undone, back on the old release, not marked bad (exit 8)', async () => {
      const ac = new AbortController();
      s.serviceManager.onRestart = async (unit, version) => {
        if (unit === 'b.service' && version === '2.0.0')
          ac.abort(new CutoverError('E_INTERRUPTED', 'interrupted by SIGTERM', { details: { signal: 'SIGTERM' } }));
      };
      await assert.rejects(update('2.0.0', ac.signal), (e: unknown) => {
        rejectsWith('E_UNHEALTHY', 8)(e);
        assert.match((e as Error).message, /interrupted by SIGTERM/);
        return true;
      });
      assert.equal(current(), 'releases/v1.0.0');
      assert.deepEqual(s.serviceManager.restarts, ['a.service@2.0.0', 'b.service@2.0.0', 'a.service@1.0.0', 'b.service@1.0.0']);
      assert.deepEqual(state().bad, []);
    });

    test('during the health gate: undone, and the undo itself is not cut short (exit 8)', async () => {
      const ac = new AbortController();
      s.health.onGate = async (v, signal) => {
        if (v !== '2.0.0') return;
        ac.abort(new CutoverError('E_INTERRUPTED', 'interrupted by SIGTERM', { details: { signal: 'SIGTERM' } }));
        signal.throwIfAborted();
      };
      await assert.rejects(update('2.0.0', ac.signal), rejectsWith('E_UNHEALTHY', 8));
      assert.equal(current(), 'releases/v1.0.0');
      assert.deepEqual(s.health.gates, ['preflight@1.0.0', 'gate@2.0.0', 'gate@1.0.0']);
      assert.deepEqual(state().bad, []);
    });
  });
});

function readdir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
