/**
 * Recovery reads the journal a killed run left and settles it through the same handlers: an
 * update killed at any step before its gate passed is undone; one killed after is completed.
 * Each journal position is written as a SIGKILL would leave it (the running step's effect
 * either happened or not), then `recover` runs in-process with fake services.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Config } from '../../src/config/config.ts';
import { recover } from '../../src/engine/recover.ts';
import { runRollback } from '../../src/engine/rollback.ts';
import { getStatus } from '../../src/engine/status.ts';
import type { Step, StepRecord } from '../../src/engine/steps.ts';
import { runUpdate } from '../../src/engine/update.ts';
import { layoutOf } from '../../src/layout/paths.ts';
import { removeRelease } from '../../src/layout/releases.ts';
import { switchCurrent } from '../../src/layout/swap.ts';
import { readHistory, readState, writeState, type Journal } from '../../src/state/state.ts';
import { engineWorld, fakeServices, type FakeServices } from '../helpers/engine-fakes.ts';
import type { World } from '../helpers/world.ts';

describe('recovery from each journal position (in-process, fake services)', () => {
  let w: World;
  let base: Config;
  let n = 0;
  /** The update's real steps, as a dry run plans them, then a prune of v3.0.0. */
  let steps: Step[] = [];
  const never = new AbortController().signal;

  before(async () => {
    ({ w, config: base } = await engineWorld());
  });
  after(async () => {
    await w.close();
  });

  /** A root on v1.0.0 with v2.0.0 and v3.0.0 retained (previous: v2.0.0). */
  async function setup(): Promise<{ root: string; config: Config; s: FakeServices }> {
    const root = path.join(w.dir, `root-${++n}`);
    const config = { ...base, root };
    let s = fakeServices(root, w.caFile);
    for (const v of ['3.0.0', '2.0.0', '1.0.0']) await runUpdate(config, s, { version: v, dryRun: false, allowDowngrade: true, signal: never });
    s = fakeServices(root, w.caFile);
    return { root, config, s };
  }

  test('an update killed at any step up to its gate is undone; killed after it, completed', async () => {
    // The real plan: a dry run of 2.0.0 over 1.0.0 on a root that never had 2.0.0.
    {
      const root = path.join(w.dir, `plan-${++n}`);
      const config = { ...base, root };
      const s = fakeServices(root, w.caFile);
      await runUpdate(config, s, { version: '1.0.0', dryRun: false, allowDowngrade: false, signal: never });
      const dry = await runUpdate(config, s, { version: '2.0.0', dryRun: true, allowDowngrade: false, signal: never });
      steps = dry.steps.map(({ outcome: _o, ms: _m, ...step }) => step as unknown as Step);
    }
    steps.push({ kind: 'prune', versions: ['3.0.0'] });
    const kinds: string[] = steps.map((x) => x.kind);
    assert.deepEqual(kinds, ['preflight', 'fetch-bundle', 'verify', 'stage', 'install', 'switch', 'restart', 'restart', 'gate', 'prune']);
    const at = (k: string): number => kinds.indexOf(k);
    const commitAt = at('gate');

    const cases: Array<{ i: number; effect: boolean }> = [];
    for (let i = 0; i < steps.length; i++) {
      cases.push({ i, effect: false });
      if ((['install', 'switch', 'restart', 'prune'] as string[]).includes(kinds[i]!)) cases.push({ i, effect: true });
    }
    for (const { i, effect } of cases) {
      const label = `killed in step ${i + 1} (${kinds[i]}), its effect ${effect ? 'done' : 'not done'}`;
      const { root, config, s } = await setup();
      const layout = layoutOf(root);
      // The disk as the steps before i (and, with `effect`, step i) left it.
      const did = (k: string): boolean => at(k) < i || (at(k) === i && effect);
      const state = await readState(layout);
      if (!did('install')) {
        await removeRelease(layout, '2.0.0');
        delete state.installed['2.0.0'];
      }
      if (did('switch')) {
        await switchCurrent(layout, '2.0.0');
        state.previous = '1.0.0';
      }
      const records: StepRecord[] = steps.map((step, j) => ({ step, status: j < i ? 'done' : j === i ? 'running' : 'pending' }));
      const journal: Journal = {
        op: 'update',
        from: '1.0.0',
        to: '2.0.0',
        startedAt: new Date().toISOString(),
        pid: 999_999,
        recovery: 'undo',
        commitAt,
        steps: records,
      };
      state.journal = journal;
      await writeState(layout, state);

      const status = await getStatus(config);
      assert.equal(status.interrupted?.next, i > commitAt ? 'complete' : 'undo', label);
      assert.equal(status.interrupted?.step, kinds[i], label);

      const { recovery } = await recover(config, s, layout);
      const now = readlinkSync(path.join(root, 'current'));
      const after = JSON.parse(readFileSync(layout.stateFile, 'utf8')) as { journal: unknown; previous: string | null; installed: Record<string, unknown> };
      assert.equal(after.journal, null, label);
      if (i > commitAt) {
        assert.equal(recovery.pending, 'completed', label);
        assert.equal(now, 'releases/v2.0.0', label);
        assert.equal(existsSync(path.join(root, 'releases', 'v3.0.0')), false, `${label}: the prune was completed`);
        assert.deepEqual(s.serviceManager.restarts, [], `${label}: nothing is restarted again`);
      } else {
        assert.equal(recovery.pending, 'undone', label);
        assert.equal(now, 'releases/v1.0.0', label);
        assert.equal(existsSync(path.join(root, 'releases', 'v2.0.0')), false, `${label}: the install is undone`);
        assert.equal(after.installed['2.0.0'], undefined, label);
        assert.ok(existsSync(path.join(root, 'releases', 'v3.0.0')), label);
        // The units that may have run v2.0.0 are restarted on v1.0.0, in order, then gated.
        const touched = ['a.service', 'b.service'].filter((_u, k) => at('restart') + k <= i);
        assert.deepEqual(
          s.serviceManager.restarts,
          touched.map((u) => `${u}@1.0.0`),
          label,
        );
        assert.deepEqual(s.health.gates, touched.length ? ['gate@1.0.0'] : [], label);
        if (did('switch')) assert.equal(after.previous, null, `${label}: previous is what it was before the switch`);
      }
      const last = (await readHistory(layout, 1))[0];
      assert.equal(last?.op, 'recover', label);
      await s.http.close();
    }
  });

  test('a state file written by the previous format (1) keeps working: status, rollback, recovery of its pending switch', async () => {
    const { root, config, s } = await setup();
    const layout = layoutOf(root);
    const v2 = await readState(layout);
    // What cutover 0.1 wrote, mid-activation of an update 1.0.0 -> 2.0.0 (current already moved).
    await switchCurrent(layout, '2.0.0');
    writeFileSync(
      layout.stateFile,
      JSON.stringify({
        schema: 1,
        previous: '1.0.0',
        bad: [],
        pending: { op: 'update', from: '1.0.0', to: '2.0.0', startedAt: '2026-11-30T00:00:00.000Z', pid: 4242, phase: 'activating' },
        installed: v2.installed,
      }),
    );
    const status = await getStatus(config);
    assert.equal(status.pending, true);
    assert.equal(status.interrupted?.next, 'undo');
    const { recovery } = await recover(config, s, layout);
    assert.equal(recovery.pending, 'undone');
    assert.equal(readlinkSync(path.join(root, 'current')), 'releases/v1.0.0');
    assert.deepEqual(s.serviceManager.restarts, ['a.service@1.0.0', 'b.service@1.0.0']);
    const after = JSON.parse(readFileSync(layout.stateFile, 'utf8')) as Record<string, unknown>;
    assert.equal(after.format, 2);
    assert.equal(after.schema, undefined);
    assert.equal(after.pending, undefined);
    assert.equal(after.journal, null);

    // Without a pending switch: everything carries over, and rollback still knows previous.
    writeFileSync(layout.stateFile, JSON.stringify({ schema: 1, previous: '3.0.0', bad: ['2.0.0'], pending: null, installed: v2.installed }));
    assert.equal((await getStatus(config)).previous, '3.0.0');
    const r = await runRollback(config, fakeServices(root, w.caFile), {});
    assert.equal(r.to, '3.0.0');
    const upgraded = JSON.parse(readFileSync(layout.stateFile, 'utf8')) as { format: number; bad: string[]; previous: string };
    assert.equal(upgraded.format, 2);
    assert.deepEqual(upgraded.bad, ['2.0.0']);
    assert.equal(upgraded.previous, '1.0.0');
  });

  test('a state file from a newer format is refused with what to do, not misread', async () => {
    const { root, config } = await setup();
    writeFileSync(layoutOf(root).stateFile, JSON.stringify({ format: 3, journal: null }));
    await assert.rejects(getStatus(config), /E_LAYOUT|unknown state format 3/);
  });
});

test('a journal killed while it was being undone is undone, even a rollback (which otherwise resumes)', async () => {
  const { recoveryVerdict } = await import('../../src/engine/executor.ts');
  const journal: Journal = {
    op: 'rollback',
    from: '2.0.0',
    to: '1.0.0',
    startedAt: '2026-12-01T00:00:00.000Z',
    pid: 1,
    recovery: 'resume',
    commitAt: 2,
    steps: [
      { step: { kind: 'switch', from: '2.0.0', to: '1.0.0', previous: null }, status: 'done' },
      { step: { kind: 'restart', unit: 'a.service' }, status: 'done' },
      { step: { kind: 'gate', version: '1.0.0' }, status: 'failed' },
    ],
  };
  assert.equal(recoveryVerdict(journal), 'undo');
  assert.equal(recoveryVerdict({ ...journal, steps: journal.steps.map((r) => ({ ...r, status: r.status === 'failed' ? 'running' : r.status })) }), 'complete');
});
