import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseReleaseIndex, resolveRelease } from '../../src/release/release-index.ts';
import { CutoverError } from '../../src/errors.ts';

const url = new URL('https://releases.example.com/demo/index.json');
const entry = (version: string, extra: Record<string, unknown> = {}) => ({
  version,
  artifact: `demo-${version}.tar.gz`,
  bundle: `demo-${version}.tar.gz.sigstore.json`,
  sha256: 'ab'.repeat(32),
  size: 100,
  ...extra,
});

test('URLs resolve relative to the index; versions accept a leading v', () => {
  const idx = parseReleaseIndex({ releases: [entry('v1.4.0', { artifact: 'demo-1.4.0.tar.gz' }), entry('1.3.2', { artifact: 'https://cdn.example.com/x.tgz' })] }, url);
  assert.equal(idx.releases[0]?.version, '1.4.0');
  assert.equal(idx.releases[0]?.artifact.href, 'https://releases.example.com/demo/demo-1.4.0.tar.gz');
  assert.equal(idx.releases[1]?.artifact.href, 'https://cdn.example.com/x.tgz');
  assert.equal(resolveRelease(idx, 'v1.3.2').version, '1.3.2');
  assert.equal(resolveRelease(idx, '1.4.0').version, '1.4.0');
});

test('no --version picks the highest stable semver, not a prerelease', () => {
  const idx = parseReleaseIndex({ releases: [entry('1.10.0'), entry('1.9.0'), entry('2.0.0-rc.1')] }, url);
  assert.equal(resolveRelease(idx, undefined).version, '1.10.0');
});

test('an unknown version is E_VERSION_UNKNOWN listing what exists', () => {
  const idx = parseReleaseIndex({ releases: [entry('1.4.0')] }, url);
  assert.throws(() => resolveRelease(idx, 'v9.9.9'), (e: unknown) => e instanceof CutoverError && e.code === 'E_VERSION_UNKNOWN' && /v1\.4\.0/.test(e.hint ?? ''));
});

test('malformed indexes are rejected', () => {
  const bad = (json: unknown) =>
    assert.throws(() => parseReleaseIndex(json, url), (e: unknown) => e instanceof CutoverError && e.code === 'E_INDEX_INVALID');
  bad({});
  bad({ releases: [entry('nope')] });
  bad({ releases: [entry('1.0.0', { sha256: 'xyz' })] });
  bad({ releases: [entry('1.0.0', { size: -1 })] });
  bad({ releases: [entry('1.0.0', { artifact: 'http://insecure.example.com/x.tgz' })] });
  bad({ releases: [entry('1.0.0'), entry('v1.0.0')] });
});
