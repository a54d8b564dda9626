/**
 * `cutover release sign FILE`: a Sigstore bundle beside the file (FILE.sigstore.json), v0.3 with a
 * message signature, a Fulcio certificate for the OIDC identity and a Rekor v1 entry (plus an
 * RFC 3161 timestamp with --tsa-url). The file is hashed as a stream and the digest signed as a
 * prehashed message (ECDSA over SHA-256 of the file, which is what signing the file yields),
 * so a release of any size costs a MiB of memory. The key is ephemeral and never written.
 */
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { bundleToJSON, toMessageSignatureBundle, type BundleWithMessageSignature } from '@sigstore/bundle';
import { X509Certificate } from '@sigstore/core';
import {
  FulcioSigner,
  MessageSignatureBundleBuilder,
  RekorWitness,
  TSAWitness,
  type Artifact,
  type Signature,
  type Signer,
  type Witness,
} from '@sigstore/sign';
import { CutoverError } from '../errors.ts';
import { fileDigest } from '../layout/file-digest.ts';
import { writeFileAtomic } from '../layout/durable.ts';
import { certIdentity } from '../verify/verify.ts';

export interface SignFileOptions {
  file: string;
  /** The OIDC identity token Fulcio certifies. */
  token: string;
  fulcioUrl: string;
  rekorUrl: string;
  tsaUrl?: string | undefined;
}

export interface SignedFile {
  bundle: string;
  sha256: string;
  identity: string;
  issuer: string;
}

/**
 * An ephemeral P-256 key that signs the file's digest as a prehashed message, and anything else
 * (Fulcio's proof of possession of the key) the ordinary way.
 */
class PrehashKeyHolder implements Signer {
  readonly #privateKey: KeyObject;
  readonly #publicKeyPem: string;
  readonly #digest: Buffer;

  constructor(digest: Buffer) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#privateKey = privateKey;
    this.#publicKeyPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    this.#digest = digest;
  }

  sign(data: Buffer): Promise<Signature> {
    let signature: Buffer;
    if (data === this.#digest) {
      const d = this.#privateKey.export({ format: 'jwk' }).d;
      if (d === undefined) throw new Error('ephemeral key has no private scalar');
      signature = Buffer.from(p256.sign(data, Buffer.from(d, 'base64url'), { prehash: false, format: 'der' }));
    } else {
      signature = nodeSign('sha256', data, this.#privateKey);
    }
    return Promise.resolve({ signature, key: { $case: 'publicKey', publicKey: this.#publicKeyPem } });
  }
}

/** MessageSignatureBundleBuilder whose "artifact" is already the file's SHA-256: a v0.3 bundle. */
class DigestBundleBuilder extends MessageSignatureBundleBuilder {
  readonly #digest: Buffer;

  constructor(digest: Buffer, options: ConstructorParameters<typeof MessageSignatureBundleBuilder>[0]) {
    super(options);
    this.#digest = digest;
  }

  protected override package(_artifact: Artifact, signature: Signature): Promise<BundleWithMessageSignature> {
    if (signature.key.$case !== 'x509Certificate') throw new Error('expected a Fulcio certificate');
    return Promise.resolve(
      toMessageSignatureBundle({
        digest: this.#digest,
        signature: signature.signature,
        certificate: pemToDer(signature.key.certificate),
        certificateChain: false,
      }),
    );
  }
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** @sigstore/sign hides the cause (status, ECONNRESET, …) one level down. */
function signFailed(e: unknown): CutoverError {
  const cause = (e as { cause?: { code?: string; statusCode?: number; message?: string } }).cause;
  const why = [(e as Error).message, cause?.statusCode ?? cause?.code, cause?.message].filter(Boolean).join(': ');
  return new CutoverError('E_NET', `signing failed: ${why}`, { hint: 'check the identity token and the Fulcio/Rekor/TSA URLs, then retry', cause: e });
}

export async function signFile(o: SignFileOptions): Promise<SignedFile> {
  const { digest } = await fileDigest(o.file);
  const identityProvider = { getToken: () => Promise.resolve(o.token) };
  const retry = { retries: 2, minTimeout: 200, maxTimeout: 2000 };
  const witnesses: Witness[] = [new RekorWitness({ rekorBaseURL: o.rekorUrl, retry })];
  if (o.tsaUrl) witnesses.push(new TSAWitness({ tsaBaseURL: o.tsaUrl, retry }));
  const builder = new DigestBundleBuilder(digest, {
    signer: new FulcioSigner({ fulcioBaseURL: o.fulcioUrl, identityProvider, keyHolder: new PrehashKeyHolder(digest), retry }),
    witnesses,
  });
  let json: Record<string, unknown>;
  try {
    json = bundleToJSON(await builder.create({ data: digest }));
  } catch (e) {
    throw signFailed(e);
  }
  const der = (json as { verificationMaterial?: { certificate?: { rawBytes?: string } } }).verificationMaterial?.certificate?.rawBytes;
  const who = der ? certIdentity(X509Certificate.parse(Buffer.from(der, 'base64'))) : {};
  const bundle = `${o.file}.sigstore.json`;
  await writeFileAtomic(bundle, `${JSON.stringify(json)}\n`, 0o644);
  return { bundle, sha256: digest.toString('hex'), identity: who.identity ?? '(unknown)', issuer: who.issuer ?? '(unknown)' };
}

/** The identity token: --identity-token, else $SIGSTORE_ID_TOKEN, else the GitHub Actions job's own (id-token: write). */
export async function identityToken(flag: string | undefined, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<string> {
  if (flag) return flag;
  if (env.SIGSTORE_ID_TOKEN) return env.SIGSTORE_ID_TOKEN;
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new CutoverError(
      'E_USAGE',
      'no identity token: pass --identity-token, set SIGSTORE_ID_TOKEN, or run in GitHub Actions with `permissions: id-token: write`',
      {
        hint: 'see docs/releasing.md',
      },
    );
  }
  const u = new URL(url);
  u.searchParams.set('audience', 'sigstore');
  const res = await fetch(u, { headers: { authorization: `bearer ${bearer}` }, signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]) });
  if (!res.ok)
    throw new CutoverError('E_NET_STATUS', `GitHub Actions refused an identity token (HTTP ${res.status})`, {
      hint: 'grant the job `permissions: id-token: write`',
    });
  const body = (await res.json()) as { value?: unknown };
  if (typeof body.value !== 'string') throw new CutoverError('E_NET', 'GitHub Actions answered without a token', { hint: 'retry the job' });
  return body.value;
}

/** `…@refs/tags/v1.4.0` for 1.4.0 → `…@refs/tags/v{version}`: what operators put in trust.identity. */
export function identityTemplate(identity: string, version: string | undefined): string | undefined {
  if (!version) return undefined;
  for (const v of [`v${version}`, version]) if (identity.endsWith(v)) return `${identity.slice(0, -version.length)}{version}`;
  return undefined;
}
