/**
 * `verify`: installed releases against what was verified and installed (recorded while
 * extracting), and rollback refusing a target that was changed since, unless --force.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lastLine, World } from '../helpers/world.ts';

const json = (s: string): Record<string, unknown> => JSON.parse(lastLine(s)) as Record<string, unknown>;

describe('verify and install records', () => {
  let w: World;
  const rel = (v: string, p: string): string => path.join(w.root, 'releases', `v${v}`, p);
  before(async () => {
    w = await World.create();
    const files = { 'bin/demo': '#!/bin/sh\necho demo\n', 'lib/a.txt': 'a\n', 'lib/b.txt': 'b\n' };
    await w.publish('1.0.0', { files: { ...files, 'lib/link': 'x' } });
    await w.publish('2.0.0', { files });
    for (const v of ['1.0.0', '2.0.0']) {
      const r = await w.run(['update', '--version', `v${v}`]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await w.close();
  });

  test('an install records every entry and keeps the bundle; verify finds the current release as installed', async () => {
    const record = JSON.parse(readFileSync(path.join(w.root, '.cutover', 'releases', 'v2.0.0.json'), 'utf8')) as {
      entries: Array<{ path: string; sha256?: string }>;
    };
    assert.deepEqual(
      record.entries.map((e) => e.path),
      ['bin', 'bin/demo', 'lib', 'lib/a.txt', 'lib/b.txt', 'release.json', 'runtime'],
    );
    assert.ok(existsSync(path.join(w.root, '.cutover', 'releases', 'v2.0.0.sigstore.json')));
    const r = await w.run(['verify', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (json(r.stdout).releases as Array<{ version: string; status: string }>).map((c) => [c.version, c.status]),
      [['2.0.0', 'ok']],
    );
  });

  test('changed content, mode, type, links, added and missing files are each reported (exit 3); the runtime link is expected', async () => {
    writeFileSync(rel('1.0.0', 'lib/a.txt'), 'tampered\n');
    chmodSync(rel('1.0.0', 'bin/demo'), 0o700);
    unlinkSync(rel('1.0.0', 'lib/b.txt'));
    writeFileSync(rel('1.0.0', 'lib/extra.so'), 'planted');
    unlinkSync(rel('1.0.0', 'lib/link'));
    symlinkSync('/etc/passwd', rel('1.0.0', 'lib/link'));
    const r = await w.run(['verify', '--all', '--json']);
    assert.equal(r.code, 3, r.stderr);
    const err = json(r.stdout) as {
      error: { code: string; details: { releases: Array<{ version: string; findings: Array<{ path: string; problem: string }> }> } };
    };
    assert.equal(err.error.code, 'E_RELEASE_MODIFIED');
    const found = err.error.details.releases[0]!.findings.map((f) => `${f.problem} ${f.path}`).sort();
    assert.deepEqual(found, ['added lib/extra.so', 'content lib/a.txt', 'missing lib/b.txt', 'mode bin/demo', 'type lib/link']);
    assert.equal(err.error.details.releases.length, 1, 'v2.0.0 is untouched');
  });

  test('rollback onto a modified release is refused (exit 3, nothing changed); --force goes on with a warning', async () => {
    const snap = w.snapshot();
    let r = await w.run(['rollback']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(lastLine(r.stderr), /E_RELEASE_MODIFIED: releases\/v1\.0\.0 was changed after it was verified and installed: /);
    assert.deepEqual(w.snapshot(), snap);
    r = await w.run(['rollback', '--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: releases\/v1\.0\.0 was changed after .*; going on \(--force\)/);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');
  });

  test('a release installed before records existed is reported as unrecorded, a warning', async () => {
    rmSync(path.join(w.root, '.cutover', 'releases', 'v2.0.0.json'));
    const r = await w.run(['verify', 'v2.0.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /W_RELEASE_UNRECORDED: v2\.0\.0 was installed before cutover kept install records/);
    assert.match(r.stdout, /v2\.0\.0: unrecorded/);
  });
});
