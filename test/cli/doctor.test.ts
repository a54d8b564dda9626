/**
 * `doctor`: a healthy install has nothing to say; planted leftovers, loose modes and an
 * interrupted operation are each found (exit 6) without changing anything; `--fix` repairs them
 * and the next `doctor` exits 0; an old trusted root is a warning only.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lastLine, World } from '../helpers/world.ts';

const json = (s: string): { ok: boolean; findings: Array<{ code: string; severity: string; path: string; fixable: boolean; fixed?: boolean }> } =>
  JSON.parse(lastLine(s)) as { ok: boolean; findings: Array<{ code: string; severity: string; path: string; fixable: boolean; fixed?: boolean }> };

describe('doctor', () => {
  let w: World;
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0');
    await w.publish('1.1.0');
    for (const v of ['1.0.0', '1.1.0']) assert.equal((await w.run(['update', '--version', v])).code, 0);
  });
  after(async () => {
    await w.close();
  });

  test('a healthy install: exit 0, no findings', async () => {
    const r = await w.run(['doctor', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout), { ok: true, findings: [] });
  });

  test('loose modes, leftovers and an interrupted operation are each found (exit 6); plain doctor changes nothing', async () => {
    chmodSync(path.join(w.root, 'releases', 'v1.0.0'), 0o775);
    symlinkSync('releases/v1.0.0', path.join(w.root, '.current.tmp-999-abcd'));
    writeFileSync(path.join(w.root, '.cutover', 'staging', 'v9.9.9-left'), 'partial');
    const stateFile = path.join(w.root, '.cutover', 'state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
    state.journal = {
      op: 'gc',
      from: null,
      to: null,
      startedAt: new Date().toISOString(),
      pid: 999_999,
      recovery: 'resume',
      commitAt: 0,
      steps: [{ step: { kind: 'prune', versions: [] }, status: 'running' }],
    };
    writeFileSync(stateFile, JSON.stringify(state));
    const before = readFileSync(stateFile);
    const r = await w.run(['doctor', '--json']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /E_DOCTOR: 2 problems found \(E_UNSAFE_PATH, E_INTERRUPTED\)/);
    const doc = json(r.stdout);
    assert.equal(doc.ok, false);
    assert.deepEqual(doc.findings.map((f) => `${f.code} ${f.severity} ${path.relative(w.root, f.path)} ${f.fixable}`).sort(), [
      'E_INTERRUPTED error .cutover/state.json true',
      'E_UNSAFE_PATH error releases/v1.0.0 true',
      'W_LEFTOVER warning .current.tmp-999-abcd true',
      'W_LEFTOVER warning .cutover/staging true',
    ]);
    assert.deepEqual(readFileSync(stateFile), before, 'plain doctor only reads');
    assert.equal(statSync(path.join(w.root, 'releases', 'v1.0.0')).mode & 0o777, 0o775);
  });

  test('--fix repairs what it found; the next doctor exits 0; no release was removed', async () => {
    const r = await w.run(['doctor', '--fix', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout).findings.filter((f) => f.fixed).length, 4);
    assert.equal(statSync(path.join(w.root, 'releases', 'v1.0.0')).mode & 0o777, 0o755);
    assert.ok(!existsSync(path.join(w.root, '.current.tmp-999-abcd')));
    assert.ok(!existsSync(path.join(w.root, '.cutover', 'staging', 'v9.9.9-left')));
    assert.equal((JSON.parse(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8')) as { journal: unknown }).journal, null);
    assert.ok(existsSync(path.join(w.root, 'releases', 'v1.0.0')) && existsSync(path.join(w.root, 'releases', 'v1.1.0')));
    const again = await w.run(['doctor']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /no problems found/);
  });

  test('an old trusted root is a warning (W_TRUST_ROOT_OLD), not a failure', async () => {
    const old = new Date(Date.now() - 200 * 86_400_000);
    utimesSync(w.trustedRoot, old, old);
    const r = await w.run(['doctor']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /W_TRUST_ROOT_OLD \S+trusted_root\.json: the Sigstore trusted root is 20\d days old/);
  });
});
