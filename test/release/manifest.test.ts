import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CutoverError } from '../../src/errors.ts';
import { checkManifest, readReleaseManifest } from '../../src/release/manifest.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-manifest-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const isManifestError = (match?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof CutoverError, String(e));
  assert.equal(e.code, 'E_RELEASE_MANIFEST');
  assert.ok(e.hint);
  if (match) assert.match(e.message, match);
  return true;
};

test('a valid release.json is returned with its extra fields', () =>
  withDir(async (dir) => {
    await writeFile(path.join(dir, 'release.json'), JSON.stringify({ name: 'demo', version: '1.4.0', health: '/healthz' }));
    assert.deepEqual(await readReleaseManifest(dir), { name: 'demo', version: '1.4.0', health: '/healthz' });
  }));

test('missing release.json', () =>
  withDir(async (dir) => {
    await assert.rejects(readReleaseManifest(dir), isManifestError(/release\.json is missing/));
  }));

test('release.json that is a symlink is refused, even to a valid file', () =>
  withDir(async (dir) => {
    await writeFile(path.join(dir, 'real.json'), JSON.stringify({ name: 'demo', version: '1.4.0' }));
    await symlink('real.json', path.join(dir, 'release.json'));
    await assert.rejects(readReleaseManifest(dir), isManifestError(/symlink/));
  }));

test('release.json that is a directory or a FIFO is refused without blocking', () =>
  withDir(async (dir) => {
    await mkdir(path.join(dir, 'release.json'));
    await assert.rejects(readReleaseManifest(dir), isManifestError(/not a regular file/));
    await rm(path.join(dir, 'release.json'), { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'release.json')]);
    await assert.rejects(readReleaseManifest(dir), isManifestError(/not a regular file/));
  }));

test('release.json over 1 MiB is refused', () =>
  withDir(async (dir) => {
    const pad = 'x'.repeat(1024 * 1024);
    await writeFile(path.join(dir, 'release.json'), JSON.stringify({ name: 'demo', version: '1.4.0', pad }));
    await assert.rejects(readReleaseManifest(dir), isManifestError(/limit/));
  }));

test('invalid JSON, non-objects and missing or non-string fields are refused', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'release.json');
    const cases: Array<[string, RegExp]> = [
      ['{"name": "demo",', /not valid JSON/],
      ['[]', /not a JSON object/],
      ['null', /not a JSON object/],
      ['"demo"', /not a JSON object/],
      ['{"version": "1.4.0"}', /"name"/],
      ['{"name": "demo"}', /"version"/],
      ['{"name": "demo", "version": 1.4}', /"version"/],
      ['{"name": "", "version": "1.4.0"}', /"name"/],
    ];
    for (const [text, match] of cases) {
      await writeFile(file, text);
      await assert.rejects(readReleaseManifest(dir), isManifestError(match), text);
    }
  }));

test('checkManifest accepts the same name and version, ignoring a leading v', () => {
  checkManifest({ name: 'demo', version: '1.4.0' }, { name: 'demo', version: '1.4.0' });
  checkManifest({ name: 'demo', version: 'v1.4.0' }, { name: 'demo', version: '1.4.0' });
  checkManifest({ name: 'demo', version: '1.4.0' }, { name: 'demo', version: 'v1.4.0' });
});

test('checkManifest refuses another app or another version, showing both', () => {
  assert.throws(() => checkManifest({ name: 'other', version: '1.4.0' }, { name: 'demo', version: '1.4.0' }), isManifestError(/"other".*"demo"/));
  assert.throws(() => checkManifest({ name: 'demo', version: '1.3.9' }, { name: 'demo', version: '1.4.0' }), isManifestError(/"1\.3\.9".*"1\.4\.0"/));
  assert.throws(() => checkManifest({ name: 'demo', version: '1.4.0-rc.1' }, { name: 'demo', version: 'v1.4.0' }), isManifestError());
});
