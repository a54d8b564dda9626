/**
 * Sigstore verification of one release artifact. No I/O: given the artifact's SHA-256 (computed
 * by the caller while streaming the download), the parsed bundle, the trust material and the
 * policy, it returns who signed it or throws a CutoverError.
 *
 * The artifact bytes are never needed. For message-signature bundles the library's
 * SignatureContent (which would re-hash the whole artifact) is replaced by one that checks the
 * ECDSA signature over the digest itself. For DSSE bundles the library verifies the envelope
 * and we require an in-toto subject with the artifact's digest.
 */
import { p256, p384 } from '@noble/curves/nist.js';
import { bundleFromJSON } from '@sigstore/bundle';
import type { Bundle } from '@sigstore/bundle';
import { crypto as sigCrypto, X509Certificate } from '@sigstore/core';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { PolicyError, toSignedEntity, VerificationError, Verifier } from '@sigstore/verify';
import type { SignedEntity, TrustMaterial, VerificationPolicy } from '@sigstore/verify';
import type { KeyObject } from 'node:crypto';
import { CutoverError } from '../errors.ts';
import type { VerifyPolicy } from './policy.ts';

export interface VerifyInput {
  /** SHA-256 of the artifact. */
  digest: Buffer;
  /** The bundle as parsed JSON (unvalidated). */
  bundle: unknown;
  trust: TrustMaterial;
  policy: VerifyPolicy;
}

export interface VerifiedSignature {
  /** Certificate SAN; equals policy.identity. */
  identity: string;
  /** OIDC issuer from the certificate; equals policy.issuer. */
  issuer: string;
  /** Earliest verified timestamp (tlog integrated time or RFC 3161). */
  signedAt?: Date;
  tlogIndex?: string;
}

type SignatureContent = SignedEntity['signature'];

const SHA256_LENGTH = 32;
const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const OID_FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

const HINT_BUNDLE = 'the .sigstore.json next to the release is damaged or not a Sigstore bundle; re-publish it';
const HINT_TAMPERED = 'do not install this file: it is not what was signed (corrupt download or tampering)';
const HINT_UNTRUSTED =
  'the signature does not chain to the configured trust root; check trust.trusted_root, or that the release was signed by the expected Sigstore instance';

export function verifyArtifact(input: VerifyInput): VerifiedSignature {
  const { digest, policy } = input;
  if (digest.length !== SHA256_LENGTH) {
    throw new CutoverError('E_INTERNAL', `expected a ${SHA256_LENGTH}-byte SHA-256 digest, got ${digest.length} bytes`);
  }

  const bundle = parseBundle(input.bundle);
  const entity = signedEntity(bundle, digest);

  if (entity.key.$case !== 'certificate') {
    throw new CutoverError('E_SIG_UNTRUSTED', 'the bundle is signed with a bare public key, not a Sigstore certificate', {
      hint: 'sign releases keylessly (Fulcio certificate); key-signed bundles carry no identity to check',
    });
  }
  if (!hasTimestampSource(entity)) {
    throw new CutoverError(
      'E_SIG_UNTRUSTED',
      'the bundle has no transparency-log promise or RFC 3161 timestamp, so the short-lived signing certificate cannot be checked',
      { hint: 'sign with a transparency log and/or a timestamp authority' },
    );
  }

  const verifier = new Verifier(input.trust, {
    tlogThreshold: policy.requireTlog ? 1 : 0,
    ctlogThreshold: 1,
    timestampThreshold: policy.requireTimestamp ? 1 : 0,
  });
  const libraryPolicy: VerificationPolicy = {
    // A string here would be used as a regular expression by String#match; anchor an
    // escaped copy so the library's check is exact equality too.
    subjectAlternativeName: exactly(policy.identity),
    extensions: { issuer: policy.issuer },
  };

  let identity: string | undefined;
  let issuer: string | undefined;
  try {
    const signer = verifier.verify(entity, libraryPolicy);
    identity = signer.identity?.subjectAlternativeName;
    issuer = signer.identity?.extensions?.issuer;
  } catch (e) {
    throw fromLibraryError(e, entity.key.certificate, policy);
  }

  // Belt and braces: never rely on the library's matching alone.
  const mismatch = identityError(policy, identity, issuer);
  if (mismatch) throw mismatch;

  if (bundle.content.$case === 'dsseEnvelope') {
    checkInTotoSubject(bundle.content.dsseEnvelope.payloadType, bundle.content.dsseEnvelope.payload, digest);
  }

  const result: VerifiedSignature = { identity: policy.identity, issuer: policy.issuer };
  const signedAt = earliestTimestamp(entity);
  if (signedAt) result.signedAt = signedAt;
  const tlogIndex = bundle.verificationMaterial.tlogEntries[0]?.logIndex;
  if (tlogIndex !== undefined) result.tlogIndex = tlogIndex;
  return result;
}

function parseBundle(json: unknown): Bundle {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CutoverError('E_SIG_BUNDLE', 'the signature bundle is not a JSON object', { hint: HINT_BUNDLE });
  }
  try {
    return bundleFromJSON(json);
  } catch (e) {
    throw new CutoverError('E_SIG_BUNDLE', `the signature bundle is malformed: ${(e as Error).message}`, {
      hint: HINT_BUNDLE,
      cause: e,
      details: fieldsOf(e),
    });
  }
}

function fieldsOf(e: unknown): Record<string, unknown> | undefined {
  if (e && typeof e === 'object' && 'fields' in e && Array.isArray(e.fields)) return { fields: e.fields };
  return undefined;
}

function signedEntity(bundle: Bundle, digest: Buffer): SignedEntity {
  let entity: SignedEntity;
  try {
    entity = toSignedEntity(bundle);
  } catch (e) {
    throw new CutoverError('E_SIG_BUNDLE', `the signature bundle holds an unreadable certificate or timestamp: ${(e as Error).message}`, {
      hint: HINT_BUNDLE,
      cause: e,
    });
  }
  if (bundle.content.$case !== 'messageSignature') return entity;

  const { messageDigest, signature } = bundle.content.messageSignature;
  if (messageDigest === undefined) {
    throw new CutoverError('E_SIG_BUNDLE', 'the signature bundle has no message digest', { hint: HINT_BUNDLE });
  }
  if (messageDigest.algorithm !== HashAlgorithm.SHA2_256) {
    throw new CutoverError(
      'E_SIG_BUNDLE',
      `the signature bundle uses digest algorithm ${HashAlgorithm[messageDigest.algorithm] ?? messageDigest.algorithm}; only SHA2_256 is supported`,
      { hint: 'sign releases with a SHA-256 message digest (the Sigstore default)' },
    );
  }
  if (!sigCrypto.bufferEqual(messageDigest.digest, digest)) {
    throw digestMismatch(Buffer.from(messageDigest.digest).toString('hex'), digest);
  }
  return { ...entity, signature: prehashedContent(Buffer.from(signature), digest) };
}

/**
 * SignatureContent for a message signature, checked against the artifact digest instead of
 * the artifact bytes. ECDSA signs the hash, so verifying over the digest with no further
 * hashing is the same check the library does over the bytes.
 */
function prehashedContent(signature: Buffer, digest: Buffer): SignatureContent {
  return {
    signature,
    compareSignature: (other) => sigCrypto.bufferEqual(other, signature),
    compareDigest: (other) => sigCrypto.bufferEqual(other, digest),
    compareSignedDigest: (other) => sigCrypto.bufferEqual(other, digest),
    verifySignature: (key) => verifyPrehashed(key, digest, signature),
  };
}

function verifyPrehashed(key: KeyObject, digest: Buffer, signature: Buffer): boolean {
  if (key.asymmetricKeyType !== 'ec') return false;
  const jwk = key.export({ format: 'jwk' });
  const curve = jwk.crv === 'P-256' ? p256 : jwk.crv === 'P-384' ? p384 : undefined;
  if (curve === undefined || jwk.x === undefined || jwk.y === undefined) return false;
  const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  try {
    // lowS: false — OpenSSL (and so Fulcio clients) produce high-S signatures half the time.
    return curve.verify(signature, digest, point, { prehash: false, format: 'der', lowS: false });
  } catch {
    // Malformed DER or point: not a valid signature.
    return false;
  }
}

/** A timestamp the verifier could count: an RFC 3161 token or a tlog entry with a promise. */
function hasTimestampSource(entity: SignedEntity): boolean {
  return entity.timestamps.some((t) => t.$case === 'timestamp-authority' || t.tlogEntry.inclusionPromise !== undefined);
}

function earliestTimestamp(entity: SignedEntity): Date | undefined {
  let earliest: Date | undefined;
  for (const t of entity.timestamps) {
    let at: Date | undefined;
    if (t.$case === 'timestamp-authority') at = t.timestamp.signingTime;
    else if (t.tlogEntry.inclusionPromise !== undefined) at = new Date(Number(t.tlogEntry.integratedTime) * 1000);
    if (at && (!earliest || at < earliest)) earliest = at;
  }
  return earliest;
}

function exactly(s: string): RegExp {
  return new RegExp(`^${s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')}$`);
}

/** The error for a signer that is not exactly the policy's, or undefined if it is. */
function identityError(policy: VerifyPolicy, identity: string | undefined, issuer: string | undefined, cause?: unknown): CutoverError | undefined {
  if (identity !== policy.identity) {
    return new CutoverError(
      'E_SIG_IDENTITY',
      `the release was signed by ${JSON.stringify(identity ?? '(no identity)')}, but trust.identity requires ${JSON.stringify(policy.identity)}`,
      {
        hint: 'if the signer legitimately changed, update trust.identity; otherwise do not install this release',
        details: { expected: policy.identity, actual: identity ?? null },
        cause,
      },
    );
  }
  if (issuer !== policy.issuer) {
    return new CutoverError(
      'E_SIG_ISSUER',
      `the signing certificate was issued for OIDC issuer ${JSON.stringify(issuer ?? '(none)')}, but trust.issuer requires ${JSON.stringify(policy.issuer)}`,
      {
        hint: 'set trust.issuer to the issuer the release workflow authenticates with (e.g. https://token.actions.githubusercontent.com)',
        details: { expected: policy.issuer, actual: issuer ?? null },
        cause,
      },
    );
  }
  return undefined;
}

/** Identity as recorded in the leaf certificate (same rules as @sigstore/verify). */
export function certIdentity(cert: X509Certificate): { identity?: string; issuer?: string } {
  const v2 = cert.extension(OID_FULCIO_ISSUER_V2);
  const issuer = v2 ? v2.valueObj.subs[0]?.value.toString('ascii') : cert.extension(OID_FULCIO_ISSUER_V1)?.value.toString('ascii');
  const out: { identity?: string; issuer?: string } = {};
  const identity = cert.subjectAltName;
  if (identity !== undefined) out.identity = identity;
  if (issuer !== undefined) out.issuer = issuer;
  return out;
}

function fromLibraryError(e: unknown, leaf: X509Certificate, policy: VerifyPolicy): CutoverError {
  if (e instanceof PolicyError) {
    // The chain verified; only the identity policy failed. Say which part.
    const actual = certIdentity(leaf);
    const mapped = identityError(policy, actual.identity, actual.issuer, e);
    if (mapped) return mapped;
    return new CutoverError('E_SIG_IDENTITY', `the signer does not match the policy: ${e.message}`, {
      hint: 'check trust.identity and trust.issuer',
      cause: e,
    });
  }
  if (e instanceof VerificationError) {
    switch (e.code) {
      case 'SIGNATURE_ERROR':
        return new CutoverError('E_SIG_INVALID', 'the signature does not match the artifact digest', {
          hint: HINT_TAMPERED,
          cause: e,
        });
      case 'CERTIFICATE_ERROR':
        return new CutoverError('E_SIG_UNTRUSTED', `the signing certificate is not trusted: ${e.message}`, {
          hint: HINT_UNTRUSTED,
          cause: e,
        });
      case 'TIMESTAMP_ERROR':
        return new CutoverError('E_SIG_UNTRUSTED', `the signature timestamp is not trusted: ${e.message}`, {
          hint: policy.requireTimestamp
            ? 'the release needs a verifiable timestamp (tlog or RFC 3161 from a trusted TSA); re-sign it, or set trust.require_timestamp = false'
            : HINT_UNTRUSTED,
          cause: e,
        });
      case 'TLOG_ERROR':
      case 'TLOG_MISSING_INCLUSION_ERROR':
      case 'TLOG_INCLUSION_PROOF_ERROR':
      case 'TLOG_INCLUSION_PROMISE_ERROR':
      case 'TLOG_BODY_ERROR':
        return new CutoverError('E_SIG_UNTRUSTED', `the transparency-log entry does not check out: ${e.message}`, {
          hint: policy.requireTlog
            ? 'the release must be recorded in a trusted transparency log; re-sign it with Rekor, or set trust.require_tlog = false'
            : HINT_UNTRUSTED,
          cause: e,
        });
      default:
        return new CutoverError('E_SIG_UNTRUSTED', `signature verification failed (${e.code}): ${e.message}`, {
          hint: HINT_UNTRUSTED,
          cause: e,
        });
    }
  }
  // Not one of the library's own errors: something in the bundle it could not digest.
  return new CutoverError('E_SIG_INVALID', `signature verification failed: ${(e as Error)?.message ?? String(e)}`, {
    hint: HINT_BUNDLE,
    cause: e,
  });
}

function checkInTotoSubject(payloadType: string, payload: Buffer, digest: Buffer): void {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new CutoverError('E_SIG_INVALID', `the signed DSSE payload is ${JSON.stringify(payloadType)}, not an in-toto statement`, {
      hint: 'sign the release artifact itself, or an in-toto statement naming it',
    });
  }
  let statement: unknown;
  try {
    statement = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch (e) {
    throw new CutoverError('E_SIG_INVALID', 'the signed in-toto statement is not valid JSON', {
      hint: 'sign the release artifact itself, or an in-toto statement naming it',
      cause: e,
    });
  }
  const subjects = (statement as { subject?: unknown } | null)?.subject;
  if (!Array.isArray(subjects) || subjects.length === 0) {
    throw new CutoverError('E_SIG_INVALID', 'the signed in-toto statement has no subject', {
      hint: 'sign the release artifact itself, or an in-toto statement naming it',
    });
  }
  const want = digest.toString('hex');
  const found: string[] = [];
  for (const s of subjects) {
    const sha = (s as { digest?: { sha256?: unknown } } | null)?.digest?.sha256;
    if (typeof sha !== 'string') continue;
    if (sha.toLowerCase() === want) return;
    found.push(sha.toLowerCase());
  }
  throw digestMismatch(found.join(', ') || '(no sha256 subject)', digest);
}

function digestMismatch(signed: string, digest: Buffer): CutoverError {
  return new CutoverError('E_DIGEST_MISMATCH', `the artifact's SHA-256 is ${digest.toString('hex')}, but the signature is for ${signed}`, {
    hint: HINT_TAMPERED,
    details: { actual: digest.toString('hex'), signed },
  });
}
