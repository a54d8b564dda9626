import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CutoverError } from '../../src/errors.ts';
import { loadTrustMaterial } from '../../src/verify/trust.ts';
import { verifyArtifact } from '../../src/verify/verify.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.resolve(repoRoot, 'test', 'fixtures', 'sigstore-conformance');
const PUBLIC_GOOD_ROOT = path.join(FIXTURES, 'trusted_root.from-sigstore-tuf-seeds.json');
const BEACON_IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-trust-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function trustRootError(run: () => Promise<unknown>): Promise<CutoverError> {
  try {
    await run();
  } catch (e) {
    assert.ok(e instanceof CutoverError, `expected a CutoverError, got ${String(e)}`);
    assert.equal(e.code, 'E_SIG_TRUST_ROOT', e.message);
    assert.ok(e.hint);
    return e;
  }
  assert.fail('expected E_SIG_TRUST_ROOT');
}

/** Seed a TUF cache for `mirror` with the public-good TUF root, so TUF gets as far as the network. */
async function seedTufCache(cachePath: string, mirror: string): Promise<void> {
  const require = createRequire(import.meta.url);
  const seeds = JSON.parse(await readFile(require.resolve('@sigstore/tuf/seeds.json'), 'utf8')) as Record<string, { 'root.json': string }>;
  const seed = seeds['https://tuf-repo-cdn.sigstore.dev'];
  assert.ok(seed);
  const url = new URL(mirror);
  const repoDir = path.join(cachePath, encodeURIComponent(url.host + url.pathname.replace(/\/$/, '')));
  await mkdir(path.join(repoDir, 'targets'), { recursive: true });
  await writeFile(path.join(repoDir, 'root.json'), Buffer.from(seed['root.json'], 'base64'));
}

/** The loaded material really is the public-good root: it verifies a public-good bundle. */
async function verifiesPublicGood(material: Awaited<ReturnType<typeof loadTrustMaterial>>['material']) {
  const digest = createHash('sha256')
    .update(await readFile(path.join(FIXTURES, 'bundle-verify', 'a.txt')))
    .digest();
  const bundle = JSON.parse(await readFile(path.join(FIXTURES, 'bundle-verify', 'happy-path-v0.3', 'bundle.sigstore.json'), 'utf8'));
  const result = verifyArtifact({
    digest,
    bundle,
    trust: material,
    policy: { identity: BEACON_IDENTITY, issuer: GITHUB_ISSUER, requireTlog: true, requireTimestamp: true },
  });
  assert.equal(result.identity, BEACON_IDENTITY);
}

test('an explicit trusted_root.json is read and used as is', async () => {
  const loaded = await loadTrustMaterial({ trustedRootPath: PUBLIC_GOOD_ROOT, tufCachePath: path.join(dir, 'unused') });
  assert.equal(loaded.source, 'file');
  assert.equal(loaded.path, PUBLIC_GOOD_ROOT);
  assert.ok(loaded.material.certificateAuthorities.length > 0);
  assert.ok(loaded.material.tlogs.length > 0);
  await verifiesPublicGood(loaded.material);
});

test('an unreadable or invalid trusted root is E_SIG_TRUST_ROOT', async () => {
  const tufCachePath = path.join(dir, 'unused');
  const missing = await trustRootError(() => loadTrustMaterial({ trustedRootPath: path.join(dir, 'nope.json'), tufCachePath }));
  assert.ok(missing.message.includes('nope.json'));

  const notJson = path.join(dir, 'not-json.json');
  await writeFile(notJson, '{"mediaType":');
  await trustRootError(() => loadTrustMaterial({ trustedRootPath: notJson, tufCachePath }));

  const array = path.join(dir, 'array.json');
  await writeFile(array, '[]');
  await trustRootError(() => loadTrustMaterial({ trustedRootPath: array, tufCachePath }));

  const empty = path.join(dir, 'empty.json');
  await writeFile(empty, JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1' }));
  await trustRootError(() => loadTrustMaterial({ trustedRootPath: empty, tufCachePath }));

  const badKey = path.join(dir, 'bad-key.json');
  const root = JSON.parse(await readFile(PUBLIC_GOOD_ROOT, 'utf8'));
  root.tlogs[0].publicKey.rawBytes = Buffer.from('not a key').toString('base64');
  await writeFile(badKey, JSON.stringify(root));
  await trustRootError(() => loadTrustMaterial({ trustedRootPath: badKey, tufCachePath }));
});

test('when the TUF mirror is unreachable, the root embedded in @sigstore/tuf is used', async () => {
  const tufCachePath = path.join(dir, 'tuf-unreachable');
  const mirror = 'http://127.0.0.1:1';
  await seedTufCache(tufCachePath, mirror);
  const started = Date.now();
  const loaded = await loadTrustMaterial({ tufCachePath, tufMirrorURL: mirror, deadlineMs: 2000 });
  assert.equal(loaded.source, 'embedded');
  assert.match(loaded.note ?? '', /TUF refresh failed/);
  assert.doesNotMatch(loaded.note ?? '', /No root.json/, 'failed at the network, not at cache setup');
  assert.match(loaded.note ?? '', /@sigstore\/tuf@/);
  assert.ok(Date.now() - started < 5000);
  await verifiesPublicGood(loaded.material);
});

test('a TUF mirror that never answers is abandoned at the deadline', async () => {
  const hung = http.createServer(() => {
    /* never respond */
  });
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
  const mirror = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
  const tufCachePath = path.join(dir, 'tuf-hung');
  await seedTufCache(tufCachePath, mirror);
  try {
    const started = Date.now();
    const loaded = await loadTrustMaterial({ tufCachePath, tufMirrorURL: mirror, deadlineMs: 300 });
    const elapsed = Date.now() - started;
    assert.equal(loaded.source, 'embedded');
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
  } finally {
    hung.closeAllConnections();
    await new Promise((resolve) => hung.close(resolve));
  }
});

test('without the offline fallback, an unreachable TUF mirror is E_SIG_TRUST_ROOT', async () => {
  const tufCachePath = path.join(dir, 'tuf-strict');
  const mirror = 'http://127.0.0.1:1';
  await seedTufCache(tufCachePath, mirror);
  await trustRootError(() => loadTrustMaterial({ tufCachePath, tufMirrorURL: mirror, deadlineMs: 2000, offlineFallback: false }));
});

test("the caller's abort is not turned into a fallback", async () => {
  const controller = new AbortController();
  const reason = new Error('operator pressed ^C');
  controller.abort(reason);
  await assert.rejects(
    loadTrustMaterial({ tufCachePath: path.join(dir, 'tuf-abort'), tufMirrorURL: 'http://127.0.0.1:1', signal: controller.signal }),
    (e) => e === reason,
  );
});

test('a key or authority without validFor.start is refused, not read as valid since forever (conformance: trust-root-tlog-missing-validity-start_fail)', async () => {
  const tufCachePath = path.join(dir, 'unused');
  const pristine = JSON.parse(await readFile(PUBLIC_GOOD_ROOT, 'utf8'));
  const cases: Array<[string, (r: Record<string, any>) => void, RegExp]> = [
    ['tlog start', (r) => delete r.tlogs[0].publicKey.validFor.start, /tlogs\[0\] \(logId wNI9atQGlz\+VWfO6…\) has no valid validFor\.start/],
    ['tlog period', (r) => delete r.tlogs[0].publicKey.validFor, /tlogs\[0\] .*has no validFor period/],
    ['ctlog start', (r) => delete r.ctlogs[0].publicKey.validFor.start, /ctlogs\[0\] .*has no valid validFor\.start/],
    ['CA start', (r) => delete r.certificateAuthorities[0].validFor.start, /certificateAuthorities\[0\] .*has no valid validFor\.start/],
    ['TSA start', (r) => delete r.timestampAuthorities[0].validFor.start, /timestampAuthorities\[0\] .*has no valid validFor\.start/],
    ['garbage start', (r) => (r.tlogs[0].publicKey.validFor.start = 'yesterday'), /tlogs\[0\] .*has no valid validFor\.start/],
    [
      'end before start',
      (r) => (r.certificateAuthorities[0].validFor.end = '2000-01-01T00:00:00Z'),
      /certificateAuthorities\[0\] .*validFor\.end that is invalid or before its start/,
    ],
  ];
  for (const [name, mutate, message] of cases) {
    const root = structuredClone(pristine);
    mutate(root);
    const file = path.join(dir, `no-start-${name.replace(/\W/g, '-')}.json`);
    await writeFile(file, JSON.stringify(root));
    const e = await trustRootError(() => loadTrustMaterial({ trustedRootPath: file, tufCachePath }));
    assert.match(e.message, message, name);
  }
  // The roots as published still load and verify.
  const loaded = await loadTrustMaterial({ trustedRootPath: PUBLIC_GOOD_ROOT, tufCachePath });
  await verifiesPublicGood(loaded.material);
});
