import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial } from '@sigstore/verify';
import type { TrustMaterial } from '@sigstore/verify';
import { CutoverError } from '../../src/errors.ts';
import { expandIdentity } from '../../src/verify/policy.ts';
import type { VerifyPolicy } from '../../src/verify/policy.ts';
import { loadTrustMaterial } from '../../src/verify/trust.ts';
import { verifyArtifact } from '../../src/verify/verify.ts';
import { sha256File, startSigstore } from '../helpers/sigstore.ts';
import type { MockSigstore, SignOptions } from '../helpers/sigstore.ts';
import { rejects } from '../helpers/assert.ts';

const IDENTITY = 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3';
const ISSUER = 'https://token.actions.githubusercontent.com';
const SIGNER: SignOptions = { identity: IDENTITY, issuer: ISSUER };
const POLICY: VerifyPolicy = { identity: IDENTITY, issuer: ISSUER, requireTlog: true, requireTimestamp: true };

let dir: string;
let sigstore: MockSigstore;
let stranger: MockSigstore;
let trust: TrustMaterial;
let artifactPath: string;
let digest: Buffer;
/** Minted once through @sigstore/sign's own builder (Buffer in). */
let bundle: Record<string, unknown>;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-verify-'));
  [sigstore, stranger] = await Promise.all([startSigstore(), startSigstore()]);
  const rootPath = path.join(dir, 'trusted_root.json');
  await sigstore.writeTrustedRoot(rootPath);
  trust = (await loadTrustMaterial({ trustedRootPath: rootPath, tufCachePath: path.join(dir, 'tuf') })).material;

  artifactPath = path.join(dir, 'app-1.2.3.tar.gz');
  const bytes = randomBytes(3 * 1024 * 1024);
  await writeFile(artifactPath, bytes);
  digest = await sha256File(artifactPath);
  bundle = await sigstore.sign(bytes, SIGNER);
});

after(async () => {
  await Promise.all([sigstore?.close(), stranger?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The @sigstore/verify error code behind a CutoverError. */
function libraryCode(e: CutoverError): unknown {
  return (e.cause as { code?: unknown } | undefined)?.code;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

test('expandIdentity substitutes the version without its leading v', () => {
  const template = 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v{version}';
  assert.equal(expandIdentity(template, 'v1.2.3'), IDENTITY);
  assert.equal(expandIdentity(template, '1.2.3'), IDENTITY);
  assert.equal(expandIdentity('no placeholder', '1.0.0'), 'no placeholder');
});

test('a bundle minted by @sigstore/sign verifies against the digest alone', () => {
  const before = Date.now();
  const result = verifyArtifact({ digest, bundle, trust, policy: POLICY });
  assert.equal(result.identity, IDENTITY);
  assert.equal(result.issuer, ISSUER);
  assert.ok(result.signedAt instanceof Date);
  assert.ok(Math.abs(result.signedAt.getTime() - before) < 5 * 60_000, 'signedAt is the signing time');
  assert.match(result.tlogIndex ?? '', /^\d+$/);
});

test('a bundle minted from a streamed file digest verifies too', async () => {
  const streamed = await sigstore.sign(artifactPath, SIGNER);
  const result = verifyArtifact({ digest, bundle: streamed, trust, policy: POLICY });
  assert.equal(result.identity, IDENTITY);
});

test('an RFC 3161 timestamp alone satisfies requireTimestamp when no tlog is required', async () => {
  const tsaOnly = await sigstore.sign(artifactPath, { ...SIGNER, tlog: false });
  const result = verifyArtifact({ digest, bundle: tsaOnly, trust, policy: { ...POLICY, requireTlog: false } });
  assert.equal(result.tlogIndex, undefined);
  assert.ok(result.signedAt instanceof Date);
});

test('a tlog integrated time alone satisfies requireTimestamp', async () => {
  const tlogOnly = await sigstore.sign(artifactPath, { ...SIGNER, timestamp: false });
  const result = verifyArtifact({ digest, bundle: tlogOnly, trust, policy: POLICY });
  assert.match(result.tlogIndex ?? '', /^\d+$/);
});

test('a tampered artifact (different digest) is rejected with E_DIGEST_MISMATCH', () => {
  const tampered = Buffer.from(digest);
  tampered[0] = (tampered[0] ?? 0) ^ 0xff;
  const e = rejects('E_DIGEST_MISMATCH', () => verifyArtifact({ digest: tampered, bundle, trust, policy: POLICY }));
  assert.ok(e.message.includes(tampered.toString('hex')));
});

test('a valid bundle for another file is rejected with E_DIGEST_MISMATCH', async () => {
  const other = await sigstore.sign(Buffer.from('some other release'), SIGNER);
  rejects('E_DIGEST_MISMATCH', () => verifyArtifact({ digest, bundle: other, trust, policy: POLICY }));
});

test('a logged, timestamped bundle whose signature does not verify is E_SIG_INVALID', async () => {
  const forged = await sigstore.sign(artifactPath, { ...SIGNER, badSignature: true });
  const e = rejects('E_SIG_INVALID', () => verifyArtifact({ digest, bundle: forged, trust, policy: POLICY }));
  assert.equal(libraryCode(e), 'SIGNATURE_ERROR');
});

test('a signature altered after logging is rejected (tlog and timestamp no longer match)', () => {
  const altered = clone(bundle) as { messageSignature: { signature: string } };
  const sig = Buffer.from(altered.messageSignature.signature, 'base64');
  sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 0x01;
  altered.messageSignature.signature = sig.toString('base64');
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: altered, trust, policy: POLICY }));
});

test('a different signer identity is rejected with E_SIG_IDENTITY naming both', async () => {
  const other = 'https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1.2.3';
  const signed = await sigstore.sign(artifactPath, { ...SIGNER, identity: other });
  const e = rejects('E_SIG_IDENTITY', () => verifyArtifact({ digest, bundle: signed, trust, policy: POLICY }));
  assert.ok(e.message.includes(IDENTITY), 'names the expected identity');
  assert.ok(e.message.includes(other), 'names the actual identity');
  assert.deepEqual(e.details, { expected: IDENTITY, actual: other });
});

test('identity must match exactly: a prefix or superstring in the policy does not match', () => {
  for (const identity of [IDENTITY.slice(0, -'.3'.length), 'https://github.com/acme/app', IDENTITY + '.4', `x${IDENTITY}`]) {
    rejects('E_SIG_IDENTITY', () => verifyArtifact({ digest, bundle, trust, policy: { ...POLICY, identity } }));
  }
});

test('identity must match exactly: the signed SAN may not extend the policy identity', async () => {
  const longer = await sigstore.sign(artifactPath, { ...SIGNER, identity: `${IDENTITY}-rc1` });
  rejects('E_SIG_IDENTITY', () => verifyArtifact({ digest, bundle: longer, trust, policy: POLICY }));
});

test('regular-expression characters in the policy identity are literal', async () => {
  // "." would match "X" if the identity were used as a pattern.
  const lookalike = IDENTITY.replace('github.com', 'githubXcom');
  const signed = await sigstore.sign(artifactPath, { ...SIGNER, identity: lookalike });
  rejects('E_SIG_IDENTITY', () => verifyArtifact({ digest, bundle: signed, trust, policy: POLICY }));
});

test('a different OIDC issuer is rejected with E_SIG_ISSUER', async () => {
  const signed = await sigstore.sign(artifactPath, { ...SIGNER, issuer: 'https://accounts.example.com' });
  const e = rejects('E_SIG_ISSUER', () => verifyArtifact({ digest, bundle: signed, trust, policy: POLICY }));
  assert.ok(e.message.includes(ISSUER) && e.message.includes('https://accounts.example.com'));
  for (const issuer of [`${ISSUER}/`, ISSUER.slice(0, -1)]) {
    rejects('E_SIG_ISSUER', () => verifyArtifact({ digest, bundle, trust, policy: { ...POLICY, issuer } }));
  }
});

test('a bundle from another Sigstore instance (untrusted CA, log and TSA) is E_SIG_UNTRUSTED', async () => {
  const foreign = await stranger.sign(artifactPath, SIGNER);
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: foreign, trust, policy: POLICY }));
});

test('a certificate from an untrusted CA is E_SIG_UNTRUSTED even when log and TSA are trusted', () => {
  // Trust everything of `sigstore` except its CA, which is swapped for the stranger's.
  const hybrid = clone(sigstore.trustedRootJson);
  hybrid.certificateAuthorities = stranger.trustedRootJson.certificateAuthorities;
  const hybridTrust = toTrustMaterial(TrustedRoot.fromJSON(hybrid));
  const e = rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle, trust: hybridTrust, policy: POLICY }));
  assert.equal(libraryCode(e), 'CERTIFICATE_ERROR');
});

test('a bundle without a tlog entry is E_SIG_UNTRUSTED when the tlog is required', async () => {
  const tsaOnly = await sigstore.sign(artifactPath, { ...SIGNER, tlog: false });
  const e = rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: tsaOnly, trust, policy: POLICY }));
  assert.equal(libraryCode(e), 'TLOG_ERROR');

  const stripped = clone(bundle) as { verificationMaterial: { tlogEntries: unknown[] } };
  stripped.verificationMaterial.tlogEntries = [];
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: stripped, trust, policy: POLICY }));
});

test('a tlog entry whose promise does not verify is E_SIG_UNTRUSTED', () => {
  const edited = clone(bundle) as { verificationMaterial: { tlogEntries: { integratedTime: string }[] } };
  const entry = edited.verificationMaterial.tlogEntries[0];
  assert.ok(entry);
  entry.integratedTime = String(Number(entry.integratedTime) - 60);
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: edited, trust, policy: POLICY }));
});

test('a bundle without any timestamp is E_SIG_UNTRUSTED when a timestamp is required', async () => {
  const bare = await sigstore.sign(artifactPath, { ...SIGNER, tlog: false, timestamp: false });
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: bare, trust, policy: { ...POLICY, requireTlog: false } }));
  // Dropping the TSA token from a TSA-only bundle has the same effect.
  const tsaOnly = (await sigstore.sign(artifactPath, { ...SIGNER, tlog: false })) as {
    verificationMaterial: { timestampVerificationData?: unknown };
  };
  delete tsaOnly.verificationMaterial.timestampVerificationData;
  rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: tsaOnly, trust, policy: { ...POLICY, requireTlog: false } }));
});

test('a timestamp from an untrusted TSA is E_SIG_UNTRUSTED', async () => {
  const foreign = (await stranger.sign(artifactPath, { ...SIGNER, tlog: false })) as {
    verificationMaterial: { timestampVerificationData?: unknown };
  };
  const ours = (await sigstore.sign(artifactPath, { ...SIGNER, tlog: false })) as typeof foreign;
  ours.verificationMaterial.timestampVerificationData = foreign.verificationMaterial.timestampVerificationData;
  const e = rejects('E_SIG_UNTRUSTED', () => verifyArtifact({ digest, bundle: ours, trust, policy: { ...POLICY, requireTlog: false } }));
  assert.equal(libraryCode(e), 'TIMESTAMP_ERROR');
});

test('malformed bundles are rejected with E_SIG_BUNDLE', () => {
  const badCert = clone(bundle) as {
    verificationMaterial: { x509CertificateChain: { certificates: { rawBytes: string }[] } };
  };
  const first = badCert.verificationMaterial.x509CertificateChain.certificates[0];
  assert.ok(first);
  first.rawBytes = Buffer.from('not a certificate').toString('base64');

  const noDigest = clone(bundle) as { messageSignature: { messageDigest?: unknown } };
  delete noDigest.messageSignature.messageDigest;

  const sha512 = clone(bundle) as { messageSignature: { messageDigest: { algorithm: string } } };
  sha512.messageSignature.messageDigest.algorithm = 'SHA2_512';

  const cases: [string, unknown][] = [
    ['null', null],
    ['a string', 'bundle'],
    ['an array', [bundle]],
    ['an empty object', {}],
    ['an unknown media type', { ...clone(bundle), mediaType: 'application/json' }],
    ['no verification material', { ...clone(bundle), verificationMaterial: undefined }],
    ['a garbage certificate', badCert],
    ['no message digest', noDigest],
    ['an unsupported digest algorithm', sha512],
  ];
  for (const [what, candidate] of cases) {
    const e = rejects('E_SIG_BUNDLE', () => verifyArtifact({ digest, bundle: candidate, trust, policy: POLICY }));
    assert.ok(e.message.length > 0, what);
  }
});
