/**
 * Real public-good Sigstore bundles (from sigstore-conformance), verified against the
 * public-good trusted root that @sigstore/tuf embeds. Proves the digest-only signature check
 * and the DSSE subject check agree with what Sigstore itself signs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TrustMaterial } from '@sigstore/verify';
import type { VerifyPolicy } from '../../src/verify/policy.ts';
import { loadTrustMaterial } from '../../src/verify/trust.ts';
import { verifyArtifact } from '../../src/verify/verify.ts';
import { rejects } from '../helpers/assert.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.resolve(repoRoot, 'test', 'fixtures', 'sigstore-conformance');

// Decoded from the fixtures' leaf certificates (SAN and Fulcio issuer extension).
const BEACON_IDENTITY =
  'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const POLICY: VerifyPolicy = {
  identity: BEACON_IDENTITY,
  issuer: GITHUB_ISSUER,
  requireTlog: true,
  requireTimestamp: true,
};

let trust: TrustMaterial;
let aTxtDigest: Buffer;

before(async () => {
  trust = (
    await loadTrustMaterial({
      trustedRootPath: path.join(FIXTURES, 'trusted_root.from-sigstore-tuf-seeds.json'),
      tufCachePath: '/nonexistent',
    })
  ).material;
  aTxtDigest = sha256(await readFile(path.join(FIXTURES, 'bundle-verify', 'a.txt')));
});

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

async function fixtureBundle(name: string): Promise<unknown> {
  return JSON.parse(await readFile(path.join(FIXTURES, 'bundle-verify', name, 'bundle.sigstore.json'), 'utf8'));
}

for (const [name, signedAt, tlogIndex] of [
  ['happy-path-v0.2', '2023-07-12T15:56:36.000Z', '27246492'],
  ['happy-path-v0.3', '2024-03-19T17:26:26.000Z', '79571823'],
] as const) {
  test(`${name}: message signature over a.txt verifies from its digest`, async () => {
    const result = verifyArtifact({ digest: aTxtDigest, bundle: await fixtureBundle(name), trust, policy: POLICY });
    assert.deepEqual(result, {
      identity: BEACON_IDENTITY,
      issuer: GITHUB_ISSUER,
      signedAt: new Date(signedAt),
      tlogIndex,
    });
  });

  test(`${name}: another digest, a prefix identity and another issuer are all rejected`, async () => {
    const bundle = await fixtureBundle(name);
    rejects('E_DIGEST_MISMATCH', () => verifyArtifact({ digest: sha256(Buffer.from('not a.txt')), bundle, trust, policy: POLICY }));
    // @sigstore/verify alone would accept this one (it matches SANs as a pattern).
    rejects('E_SIG_IDENTITY', () =>
      verifyArtifact({
        digest: aTxtDigest,
        bundle,
        trust,
        policy: { ...POLICY, identity: 'https://github.com/sigstore-conformance/' },
      }),
    );
    rejects('E_SIG_ISSUER', () => verifyArtifact({ digest: aTxtDigest, bundle, trust, policy: { ...POLICY, issuer: 'https://accounts.google.com' } }));
  });
}

test('happy-path-intoto-in-dsse-v3: in-toto statement naming a.txt verifies', async () => {
  const result = verifyArtifact({
    digest: aTxtDigest,
    bundle: await fixtureBundle('happy-path-intoto-in-dsse-v3'),
    trust,
    policy: POLICY,
  });
  assert.equal(result.identity, BEACON_IDENTITY);
  assert.equal(result.issuer, GITHUB_ISSUER);
  assert.equal(result.tlogIndex, '155690850');
  assert.deepEqual(result.signedAt, new Date('2024-12-16T18:42:56.000Z'));
});

test('happy-path-intoto-in-dsse-v3: a digest the statement does not name is E_DIGEST_MISMATCH', async () => {
  const bundle = await fixtureBundle('happy-path-intoto-in-dsse-v3');
  rejects('E_DIGEST_MISMATCH', () => verifyArtifact({ digest: sha256(Buffer.from('not a.txt')), bundle, trust, policy: POLICY }));
});

test('happy-path-intoto-in-dsse-v3: a tampered DSSE payload is rejected', async () => {
  const bundle = (await fixtureBundle('happy-path-intoto-in-dsse-v3')) as { dsseEnvelope: { payload: string } };
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
  statement.subject[0].digest.sha256 = sha256(Buffer.from('evil')).toString('hex');
  bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
  // The tlog entry records the original payload hash, so this fails before the signature check.
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest: sha256(Buffer.from('evil')), bundle, trust, policy: POLICY }));
});

test('intoto-expired-certificate_fail: certificate outside the CA validity window is E_SIG_UNTRUSTED', async () => {
  const dir = path.join(FIXTURES, 'bundle-verify', 'intoto-expired-certificate_fail');
  const ownTrust = (await loadTrustMaterial({ trustedRootPath: path.join(dir, 'trusted_root.json'), tufCachePath: '/nonexistent' })).material;
  const digest = sha256(await readFile(path.join(dir, 'artifact')));
  const bundle = await fixtureBundle('intoto-expired-certificate_fail');
  const e = rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle, trust: ownTrust, policy: POLICY }));
  assert.equal((e.cause as { code?: unknown }).code, 'CERTIFICATE_ERROR');
});
