import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkVersion, describeSkipped, parseReleaseIndex, resolveRelease } from '../../src/release/release-index.ts';
import { rejects } from '../helpers/assert.ts';
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
  const idx = parseReleaseIndex(
    { releases: [entry('v1.4.0', { artifact: 'demo-1.4.0.tar.gz' }), entry('1.3.2', { artifact: 'https://cdn.example.com/x.tgz' })] },
    url,
  );
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
  assert.throws(
    () => resolveRelease(idx, 'v9.9.9'),
    (e: unknown) => e instanceof CutoverError && e.code === 'E_VERSION_UNKNOWN' && /v1\.4\.0/.test(e.hint ?? ''),
  );
});

test('only a document without a "releases" array is E_INDEX_INVALID', () => {
  const bad = (json: unknown) =>
    assert.throws(
      () => parseReleaseIndex(json, url),
      (e: unknown) => e instanceof CutoverError && e.code === 'E_INDEX_INVALID' && !!e.hint,
    );
  bad({});
  bad(null);
  bad([]);
  bad('releases');
  bad({ releases: {} });
  assert.deepEqual(parseReleaseIndex({ releases: [] }, url).skipped, []);
});

test('each malformed entry is skipped with its reason; the good ones still count', () => {
  const cases: Array<[unknown, RegExp]> = [
    [entry('1.2'), /^version "1\.2" is not a semantic version$/],
    [entry('nope'), /not a semantic version/],
    [entry('01.0.0'), /not a semantic version/],
    [entry(' 1.0.0'), /not a semantic version/],
    [entry('1.1.0+build.7'), /build metadata.*cutover does not accept build metadata in versions/],
    [{ ...entry('1.0.1'), version: 7 }, /"version" must be a non-empty string/],
    [entry('1.0.2', { sha256: 'xyz' }), /sha256 "xyz" is not 64 hex digits/],
    [entry('1.0.3', { sha256: undefined }), /"sha256" must be a non-empty string/],
    [entry('1.0.4', { size: -1 }), /size -1 is not a positive byte count/],
    [entry('1.0.5', { size: 1.5 }), /size 1.5/],
    [entry('1.0.6', { size: '100' }), /size "100"/],
    [entry('1.0.7', { size: undefined }), /size missing/],
    [entry('1.0.8', { artifact: 'http://insecure.example.com/x.tgz' }), /artifact "http:\/\/insecure\.example\.com\/x\.tgz" is not an https URL/],
    [entry('1.0.9', { bundle: 'file:///etc/passwd' }), /bundle "file:\/\/\/etc\/passwd" is not an https URL/],
    [entry('1.0.10', { artifact: '' }), /"artifact" must be a non-empty string/],
    [entry('1.0.11', { bundle: 'https://[nope' }), /bundle "https:\/\/\[nope" is not a URL/],
    [entry('1.0.12', { unpacked_size: 0 }), /unpacked_size 0 is not a positive byte count/],
    [entry('1.0.13', { unpacked_size: '5' }), /unpacked_size "5"/],
    [entry('1.0.14', { unpacked_size: 2 ** 60 }), /unpacked_size/],
    ['a string', /not an object/],
    [null, /not an object/],
  ];
  for (const [bad, reason] of cases) {
    const idx = parseReleaseIndex({ releases: [entry('1.4.0'), bad, entry('1.3.0')] }, url);
    assert.deepEqual(
      idx.releases.map((r) => r.version),
      ['1.4.0', '1.3.0'],
      JSON.stringify(bad),
    );
    assert.equal(idx.skipped.length, 1, JSON.stringify(bad));
    const s = idx.skipped[0]!;
    assert.equal(s.index, 1);
    assert.match(s.reason, reason);
    const raw = typeof bad === 'object' && bad !== null ? (bad as { version?: unknown }).version : undefined;
    assert.equal(s.version, typeof raw === 'string' ? raw : null);
  }
});

test('the skipped list matches the shape operators see', () => {
  const idx = parseReleaseIndex({ releases: [entry('1.0.0'), entry('1.1.0'), entry('1.1.1'), entry('1.2')] }, url);
  assert.deepEqual(idx.skipped, [{ index: 3, version: '1.2', reason: 'version "1.2" is not a semantic version' }]);
  assert.equal(
    describeSkipped(idx.skipped[0]!),
    'the release index lists an invalid entry 3 (version "1.2"), skipped: version "1.2" is not a semantic version',
  );
  assert.equal(
    describeSkipped({ index: 0, version: null, reason: 'the entry is not an object' }),
    'the release index lists an invalid entry 0, skipped: the entry is not an object',
  );
});

test('a version listed twice skips every entry of it, whichever form it is written in', () => {
  const idx = parseReleaseIndex({ releases: [entry('1.0.0'), entry('1.1.0'), entry('v1.0.0'), entry('1.0.0', { sha256: 'x' })] }, url);
  assert.deepEqual(
    idx.releases.map((r) => r.version),
    ['1.1.0'],
  );
  assert.deepEqual(
    idx.skipped.map((s) => [s.index, s.version]),
    [
      [0, '1.0.0'],
      [2, 'v1.0.0'],
      [3, '1.0.0'],
    ],
  );
  assert.match(idx.skipped[0]!.reason, /version 1\.0\.0 is listed 3 times \(entries 0, 2, 3\)/);
  assert.match(idx.skipped[2]!.reason, /sha256/);
});

test('unpacked_size is read into unpackedSize when present', () => {
  const idx = parseReleaseIndex({ releases: [entry('1.0.0', { unpacked_size: 123456 }), entry('1.1.0')] }, url);
  assert.equal(idx.releases[0]?.unpackedSize, 123456);
  assert.equal(idx.releases[1]?.unpackedSize, undefined);
  assert.ok(!('unpackedSize' in idx.releases[1]!));
});

test('asking for a skipped version is E_VERSION_UNKNOWN naming the reason; no --version picks the newest good one', () => {
  const idx = parseReleaseIndex({ releases: [entry('1.0.0'), entry('1.2.0', { sha256: 'bad' }), entry('1.3.0+build.7')] }, url);
  assert.equal(resolveRelease(idx, undefined).version, '1.0.0');
  const e = rejects('E_VERSION_UNKNOWN', () => resolveRelease(idx, 'v1.2.0'));
  assert.equal(e.exitCode, 2);
  assert.equal(e.toLine(), 'E_VERSION_UNKNOWN: v1.2.0 is listed in the index but its entry is invalid: sha256 "bad" is not 64 hex digits; tell the vendor');
  assert.match(
    rejects('E_VERSION_UNKNOWN', () => resolveRelease(idx, '1.3.0')).message,
    /v1\.3\.0 is listed in the index but its entry is invalid: .*build metadata/,
  );
  assert.match(rejects('E_VERSION_UNKNOWN', () => resolveRelease(idx, '9.0.0')).message, /not in the release index/);
});

test('checkVersion: semver with an optional v and prereleases; no build metadata', () => {
  for (const [input, out] of [
    ['v1.4.0', '1.4.0'],
    ['1.4.0', '1.4.0'],
    ['V1.4.0', '1.4.0'],
    ['1.4.0-rc.1', '1.4.0-rc.1'],
    ['v2.0.0-alpha.1.x-y', '2.0.0-alpha.1.x-y'],
  ] as const) {
    assert.deepEqual(checkVersion(input), { ok: true, version: out });
  }
  for (const input of ['../../etc', 'v1;rm', '1.2', '', 'v', 'vv1.0.0', '=1.0.0', '1.0.0 ', '1.0.0-01', 'x'.repeat(300)]) {
    const c = checkVersion(input);
    assert.equal(c.ok, false, input);
  }
  const b = checkVersion('1.1.0+build.7');
  assert.ok(!b.ok && /cutover does not accept build metadata in versions/.test(b.reason));
});
