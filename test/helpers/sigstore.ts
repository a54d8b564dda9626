/**
 * A private Sigstore for tests: a Fulcio-like CA (with a CT log), a Rekor-like transparency
 * log and an RFC 3161 timestamp authority from @sigstore/mock, served from a real HTTP server
 * on 127.0.0.1, plus the trusted_root.json that trusts exactly them. Bundles are minted by
 * @sigstore/sign against it, so every test verifies real signatures made during the run.
 *
 * Each `startSigstore()` is an independent instance with its own keys: a bundle minted by one
 * is untrusted under another's root (that is how the "untrusted CA" tests get their bundles).
 *
 * The mock services are imported from their modules directly: the package index loads nock,
 * which would patch node:http for the whole test process.
 */
import { createHash, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { p256 } from '@noble/curves/nist.js';
import { bundleToJSON, toMessageSignatureBundle } from '@sigstore/bundle';
import type { BundleWithMessageSignature } from '@sigstore/bundle';
import { fulcioHandler, initializeCA, initializeCTLog } from '@sigstore/mock/dist/fulcio/index.js';
import { initializeTLog, rekorHandler } from '@sigstore/mock/dist/rekor/index.js';
import { initializeTSA, tsaHandler } from '@sigstore/mock/dist/timestamp/index.js';
import type { Handler } from '@sigstore/mock/dist/shared.types.js';
import { HashAlgorithm, PublicKeyDetails, TrustedRoot } from '@sigstore/protobuf-specs';
import { DSSEBundleBuilder, FulcioSigner, MessageSignatureBundleBuilder, RekorWitness, TSAWitness } from '@sigstore/sign';
import type { Artifact, Signature, Signer, Witness } from '@sigstore/sign';

export interface SignOptions {
  /** Certificate SAN (the mock CA always writes it as a URI SAN). */
  identity: string;
  /** OIDC issuer, recorded in the certificate's Fulcio issuer extensions. */
  issuer: string;
  /** Record the signature in the transparency log. Default true. */
  tlog?: boolean;
  /** Get an RFC 3161 timestamp. Default true. */
  timestamp?: boolean;
  /**
   * Sign some other digest than the one the bundle names (the mock log and TSA do not check),
   * giving a well-formed, logged, timestamped bundle whose signature does not verify.
   */
  badSignature?: boolean;
}

export interface MockSigstore {
  /** trusted_root.json (protobuf JSON) trusting this instance's CA, CT log, tlog and TSA. */
  trustedRootJson: Record<string, unknown>;
  writeTrustedRoot(file: string): Promise<void>;
  /**
   * Sign an artifact; returns the bundle as JSON. A Buffer goes through @sigstore/sign's own
   * MessageSignatureBundleBuilder; a path is stream-hashed and the digest signed (no whole-file
   * read), producing the same kind of bundle.
   */
  sign(artifact: Buffer | string, opts: SignOptions): Promise<Record<string, unknown>>;
  /**
   * A GitHub-artifact-attestation-style bundle: a DSSE envelope over an in-toto statement whose
   * subject is `name` with the artifact's sha256 (what actions/attest-build-provenance makes).
   */
  attest(artifact: Buffer, name: string, opts: SignOptions): Promise<Record<string, unknown>>;
  /** Base URL of the services (Fulcio, Rekor and TSA share it). */
  url: string;
  close(): Promise<void>;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const FULCIO_PATH = '/api/v2/signingCert';
const REKOR_PATH = '/api/v1/log/entries';
const TSA_PATH = '/api/v1/timestamp';
/** A lost connection is retried (the services are local; nothing else should fail twice). */
const RETRY = { retries: 2, minTimeout: 20, maxTimeout: 100 };

export async function startSigstore(): Promise<MockSigstore> {
  const handlers = new Map<string, Handler['fn']>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fn = req.method === 'POST' ? handlers.get(req.url ?? '') : undefined;
      if (!fn) {
        res.writeHead(404, { connection: 'close' }).end();
        return;
      }
      fn(Buffer.concat(chunks).toString('utf8')).then(
        ({ statusCode, response, contentType }) => {
          const body = typeof response === 'string' ? response : Buffer.from(response.buffer, response.byteOffset, response.byteLength);
          // No keep-alive: make-fetch-happen pools sockets, and a pooled socket the server
          // closes after its idle timeout, just as the next sign() reuses it, fails with
          // ECONNRESET (seen in CI as TLOG_CREATE_ENTRY_ERROR).
          res.writeHead(statusCode, { 'content-type': contentType ?? 'text/plain', connection: 'close' }).end(body);
        },
        (e: unknown) => res.writeHead(500, { connection: 'close' }).end(String(e)),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const ctKeys = ecKeyPair();
  const caKeys = ecKeyPair();
  const tlogKeys = ecKeyPair();
  const tsaKeys = ecKeyPair();

  const ctlog = await initializeCTLog(ctKeys);
  const ca = await initializeCA(caKeys, ctlog);
  const tlog = await initializeTLog(url, tlogKeys);
  const tsa = await initializeTSA(tsaKeys);
  // The mock TSA writes genTime with milliseconds, which @sigstore/core cannot parse.
  // Its clock is an instance field; make it tick in whole seconds.
  (tsa as unknown as { getCurrentTime: () => Date }).getCurrentTime = () => new Date(Math.floor(Date.now() / 1000) * 1000);

  handlers.set(FULCIO_PATH, fulcioHandler(ca).fn);
  handlers.set(REKOR_PATH, rekorHandler(tlog).fn);
  handlers.set(TSA_PATH, tsaHandler(tsa).fn);

  const validFor = { start: new Date(Date.now() - DAY_MS) };
  const root = TrustedRoot.fromJSON({});
  root.mediaType = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';
  root.certificateAuthorities = [
    {
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: url,
      certChain: { certificates: [{ rawBytes: toBuffer(ca.rootCertificate) }] },
      validFor,
      operator: 'cutover tests',
    },
  ];
  root.ctlogs = [
    {
      baseUrl: url,
      hashAlgorithm: HashAlgorithm.SHA2_256,
      publicKey: { rawBytes: ctlog.publicKey, keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256, validFor },
      logId: { keyId: toBuffer(ctlog.logID) },
      checkpointKeyId: undefined,
      operator: 'cutover tests',
    },
  ];
  root.tlogs = [
    {
      // Checkpoint signatures are matched by "baseUrl contains the note's origin host".
      baseUrl: url,
      hashAlgorithm: HashAlgorithm.SHA2_256,
      publicKey: { rawBytes: tlog.publicKey, keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256, validFor },
      logId: { keyId: createHash('sha256').update(tlog.publicKey).digest() },
      checkpointKeyId: undefined,
      operator: 'cutover tests',
    },
  ];
  root.timestampAuthorities = [
    {
      subject: { organization: 'sigstore.mock', commonName: 'tsa' },
      uri: url,
      certChain: {
        certificates: [{ rawBytes: toBuffer(tsa.intCertificate) }, { rawBytes: toBuffer(tsa.rootCertificate) }],
      },
      validFor,
      operator: 'cutover tests',
    },
  ];
  const trustedRootJson = TrustedRoot.toJSON(root) as Record<string, unknown>;

  function witnesses(opts: SignOptions): Witness[] {
    const list: Witness[] = [];
    if (opts.tlog ?? true) list.push(new RekorWitness({ rekorBaseURL: url, retry: RETRY }));
    if (opts.timestamp ?? true) list.push(new TSAWitness({ tsaBaseURL: url, retry: RETRY }));
    return list;
  }

  async function sign(artifact: Buffer | string, opts: SignOptions): Promise<Record<string, unknown>> {
    try {
      return await signOnce(artifact, opts);
    } catch (e) {
      // @sigstore/sign's errors hide the cause (status, ECONNRESET, …) one level down.
      const cause = (e as { cause?: { code?: string; statusCode?: number; message?: string } }).cause;
      if (!cause) throw e;
      throw new Error(`${(e as Error).message}: ${cause.code ?? cause.statusCode ?? ''} ${cause.message ?? ''}`.trim(), { cause: e });
    }
  }

  async function signOnce(artifact: Buffer | string, opts: SignOptions): Promise<Record<string, unknown>> {
    const identityProvider = { getToken: async () => identityToken(opts) };
    if (Buffer.isBuffer(artifact) && !opts.badSignature) {
      const builder = new MessageSignatureBundleBuilder({
        signer: new FulcioSigner({ fulcioBaseURL: url, identityProvider, retry: RETRY }),
        witnesses: witnesses(opts),
      });
      return bundleToJSON(await builder.create({ data: artifact }));
    }
    const digest = Buffer.isBuffer(artifact) ? createHash('sha256').update(artifact).digest() : await sha256File(artifact);
    const keyHolder = new PrehashKeyHolder(digest, opts.badSignature ?? false);
    const builder = new DigestBundleBuilder(digest, {
      signer: new FulcioSigner({ fulcioBaseURL: url, identityProvider, keyHolder, retry: RETRY }),
      witnesses: witnesses(opts),
    });
    return bundleToJSON(await builder.create({ data: digest }));
  }

  async function attest(artifact: Buffer, name: string, opts: SignOptions): Promise<Record<string, unknown>> {
    const statement = {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name, digest: { sha256: createHash('sha256').update(artifact).digest('hex') } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: { buildDefinition: { buildType: 'https://actions.github.io/buildtypes/workflow/v1' } },
    };
    const builder = new DSSEBundleBuilder({
      signer: new FulcioSigner({ fulcioBaseURL: url, identityProvider: { getToken: async () => identityToken(opts) }, retry: RETRY }),
      // An intoto entry, as the public-good bundles of GitHub attestations carry.
      witnesses: [new RekorWitness({ rekorBaseURL: url, retry: RETRY, entryType: 'intoto' }), new TSAWitness({ tsaBaseURL: url, retry: RETRY })],
    });
    return bundleToJSON(await builder.create({ data: Buffer.from(JSON.stringify(statement)), type: 'application/vnd.in-toto+json' }));
  }

  return {
    trustedRootJson,
    writeTrustedRoot: (file) => writeFile(file, JSON.stringify(trustedRootJson, null, 2)),
    sign,
    attest,
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}

/** SHA-256 of a file, read in chunks. */
export async function sha256File(file: string): Promise<Buffer> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest();
}

/**
 * An unsigned JWT (alg "none") with the chosen claims. The mock Fulcio decodes it without
 * checking a signature; @sigstore/sign only reads `sub`.
 */
export function identityToken(opts: { identity: string; issuer: string }): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({
    iss: opts.issuer,
    sub: opts.identity,
    aud: 'sigstore',
    iat: now,
    exp: now + 600,
  })}.`;
}

/**
 * Ephemeral P-256 key that signs one known digest as a prehashed message (ECDSA over the
 * digest itself, which is exactly what signing the file with SHA-256 yields) and anything
 * else (Fulcio's proof of possession) the ordinary way. With `signOther` it signs a different
 * digest instead, for bundles whose signature must not verify.
 */
class PrehashKeyHolder implements Signer {
  readonly #privateKey: KeyObject;
  readonly #publicKeyPem: string;
  readonly #digest: Buffer;
  readonly #signOther: boolean;

  constructor(digest: Buffer, signOther: boolean) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#privateKey = privateKey;
    this.#publicKeyPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    this.#digest = digest;
    this.#signOther = signOther;
  }

  async sign(data: Buffer): Promise<Signature> {
    let signature: Buffer;
    if (data === this.#digest) {
      const d = this.#privateKey.export({ format: 'jwk' }).d;
      if (d === undefined) throw new Error('ephemeral key has no private scalar');
      const message = this.#signOther ? createHash('sha256').update(data).digest() : data;
      signature = Buffer.from(p256.sign(message, Buffer.from(d, 'base64url'), { prehash: false, format: 'der' }));
    } else {
      signature = nodeSign('sha256', data, this.#privateKey);
    }
    return { signature, key: { $case: 'publicKey', publicKey: this.#publicKeyPem } };
  }
}

/** MessageSignatureBundleBuilder whose "artifact" is already the SHA-256 of the file. */
class DigestBundleBuilder extends MessageSignatureBundleBuilder {
  readonly #digest: Buffer;

  constructor(digest: Buffer, options: ConstructorParameters<typeof MessageSignatureBundleBuilder>[0]) {
    super(options);
    this.#digest = digest;
  }

  protected override async package(_artifact: Artifact, signature: Signature): Promise<BundleWithMessageSignature> {
    if (signature.key.$case !== 'x509Certificate') throw new Error('expected a Fulcio certificate');
    return toMessageSignatureBundle({
      digest: this.#digest,
      signature: signature.signature,
      certificate: pemToDer(signature.key.certificate),
      certificateChain: true,
    });
  }
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64');
}

function ecKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function toBuffer(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}
