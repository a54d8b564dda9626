/**
 * `release verify` over every case of sigstore-conformance's bundle-verify suite, vendored in
 * test/fixtures/sigstore-conformance (see SOURCE there). Each case is run as the suite's harness
 * runs it: the case's own `artifact`, `identity`, `issuer` and `trusted_root.json` when it has
 * them, else `a.txt`, the beacon identity and the public-good root. A name ending in `_fail` must
 * be refused (exit 3, a signature or digest code); any other must verify. The managed-key cases
 * (a `key.pub`) are the documented exception: cutover checks an identity, and a key-signed bundle
 * carries none, so it refuses them all (docs/releasing.md).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { REPO, runCli, type RunResult } from '../helpers/cli.ts';

const ROOT = path.join(REPO, 'test', 'fixtures', 'sigstore-conformance');
const CASES = path.join(ROOT, 'bundle-verify');
const PUBLIC_GOOD_ROOT = path.join(ROOT, 'trusted_root.from-sigstore-tuf-seeds.json');
const IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const ISSUER = 'https://token.actions.githubusercontent.com';

const cases = readdirSync(CASES)
  .filter((n) => statSync(path.join(CASES, n)).isDirectory())
  .sort();

function own(name: string, file: string): string | undefined {
  const p = path.join(CASES, name, file);
  return existsSync(p) ? p : undefined;
}

function verifyCase(name: string): Promise<RunResult> {
  const text = (file: string): string | undefined => {
    const p = own(name, file);
    return p === undefined ? undefined : readFileSync(p, 'utf8').trim();
  };
  return runCli(
    [
      'release',
      'verify',
      own(name, 'artifact') ?? path.join(CASES, 'a.txt'),
      '--bundle',
      path.join(CASES, name, 'bundle.sigstore.json'),
      '--identity',
      text('identity') ?? IDENTITY,
      '--issuer',
      text('issuer') ?? ISSUER,
      '--trusted-root',
      own(name, 'trusted_root.json') ?? PUBLIC_GOOD_ROOT,
    ],
    { CUTOVER_PROG: 'cutover' },
  );
}

// Each case is a process of its own; run them three at a time before the assertions.
const results = new Map<string, RunResult>();
before(async () => {
  const queue = [...cases];
  const worker = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) results.set(name, await verifyCase(name));
  };
  await Promise.all([worker(), worker(), worker()]);
});

for (const name of cases) {
  const managedKey = existsSync(path.join(CASES, name, 'key.pub'));
  const fail = name.endsWith('_fail');
  const expect = managedKey ? 'refused (managed key: no identity)' : fail ? 'refused' : 'verified';
  test(`conformance ${name}: ${expect}`, () => {
    const r = results.get(name);
    assert.ok(r, 'the case ran');
    if (managedKey) {
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /E_SIG_UNTRUSTED: the bundle is signed with a bare public key/);
    } else if (fail) {
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /^cutover: E_(SIG_[A-Z_]+|DIGEST_MISMATCH): /m);
    } else {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cutover: verified .*: signed by /);
    }
  });
}

test('the whole suite is vendored', () => {
  // 70 cases at the vendored commit: 3 with a managed key, 49 expected to fail.
  assert.equal(cases.length, 70);
  assert.equal(cases.filter((n) => existsSync(path.join(CASES, n, 'key.pub'))).length, 3);
  assert.equal(cases.filter((n) => n.endsWith('_fail')).length, 49);
});
