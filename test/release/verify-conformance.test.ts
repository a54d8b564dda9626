/**
 * `release verify` over the sigstore-conformance bundle-verify cases vendored in
 * test/fixtures/sigstore-public-good (see SOURCE there): each agrees with the case's expected
 * result (a name ending in `_fail` must be refused).
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, runCli } from '../helpers/cli.ts';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'sigstore-public-good');
const IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const ISSUER = 'https://token.actions.githubusercontent.com';
const cases = readdirSync(FIXTURES).filter((n) => statSync(path.join(FIXTURES, n)).isDirectory());

for (const name of cases) {
  const fail = name.endsWith('_fail');
  test(`conformance case ${name}: ${fail ? 'refused' : 'verified'}`, async () => {
    const r = await runCli(
      [
        'release',
        'verify',
        path.join(FIXTURES, 'a.txt'),
        '--bundle',
        path.join(FIXTURES, name, 'bundle.sigstore.json'),
        '--identity',
        IDENTITY,
        '--issuer',
        ISSUER,
        '--trusted-root',
        path.join(FIXTURES, 'trusted_root.from-sigstore-tuf-seeds.json'),
        '--json',
      ],
      { CUTOVER_PROG: 'cutover' },
    );
    if (fail) {
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /E_SIG_/);
    } else {
      assert.equal(r.code, 0, r.stderr);
    }
  });
}

test('there are cases to run', () => assert.ok(cases.length >= 4));
