/**
 * `cutover release verify FILE`: exactly the verification `update` runs (verify/verify.ts, the
 * same policy: exact identity and issuer, a transparency-log entry, a trusted timestamp), on any
 * file and its Sigstore bundle, so a vendor can check a release before publishing it.
 */
import { constants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import { fileDigest } from '../layout/file-digest.ts';
import { expandIdentity } from '../verify/policy.ts';
import { loadTrustMaterial } from '../verify/trust.ts';
import { verifyArtifact } from '../verify/verify.ts';
import { archiveInfo } from './archive-info.ts';
import { checkVersion } from './release-index.ts';

const MAX_BUNDLE_BYTES = 1 << 20;

export interface VerifyFileOptions {
  file: string;
  /** Default: FILE.sigstore.json. */
  bundle?: string | undefined;
  /** Exact identity; `{version}` is replaced by --version or the archive's release.json version. */
  identity: string;
  issuer: string;
  version?: string | undefined;
  trustedRoot?: string | undefined;
  /** Where the public-good TUF metadata is cached (without --trusted-root). */
  tufCache: string;
  signal: AbortSignal;
}

export interface VerifiedFile {
  file: string;
  bundle: string;
  sha256: string;
  identity: string;
  issuer: string;
  trust: string;
  signedAt?: string;
}

async function readBundle(file: string): Promise<unknown> {
  let text: string;
  try {
    const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await fh.stat();
      if (st.size > MAX_BUNDLE_BYTES)
        throw new CutoverError('E_SIG_BUNDLE', `${file} is ${st.size} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit for a bundle`, {
          hint: 'pass the Sigstore bundle with --bundle',
        });
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof CutoverError) throw e;
    if (errnoCode(e) === 'ENOENT')
      throw new CutoverError('E_SIG_BUNDLE', `there is no bundle at ${file}`, { hint: 'sign the file first (`cutover release sign`), or pass --bundle' });
    throw fsError('read', file, e);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CutoverError('E_SIG_BUNDLE', `${file} is not JSON: ${(e as Error).message}`, { hint: 'pass a Sigstore bundle (.sigstore.json)' });
  }
}

/** The identity to require: literal, or with `{version}` from --version or the archive's own release.json. */
async function identityFor(o: VerifyFileOptions): Promise<string> {
  if (!o.identity.includes('{version}')) return o.identity;
  let version = o.version;
  if (version === undefined) {
    const v = (await archiveInfo(o.file)).manifest.version;
    if (typeof v !== 'string')
      throw new CutoverError('E_RELEASE_MANIFEST', `${o.file}'s release.json has no "version" for {version} in the identity`, { hint: 'pass --version' });
    version = v;
  }
  const c = checkVersion(version);
  if (!c.ok) throw new CutoverError('E_USAGE', c.reason, { hint: 'pass --version like 1.4.0' });
  return expandIdentity(o.identity, c.version);
}

export async function verifyFile(o: VerifyFileOptions): Promise<VerifiedFile> {
  const bundlePath = o.bundle ?? `${o.file}.sigstore.json`;
  const bundle = await readBundle(bundlePath);
  const { digest } = await fileDigest(o.file);
  const identity = await identityFor(o);
  if (o.trustedRoot === undefined)
    await mkdir(o.tufCache, { recursive: true, mode: 0o700 }).catch((e: unknown) => {
      throw fsError('create the TUF cache', o.tufCache, e);
    });
  const trust = await loadTrustMaterial({
    ...(o.trustedRoot !== undefined ? { trustedRootPath: o.trustedRoot } : {}),
    tufCachePath: o.tufCache,
    signal: o.signal,
  });
  const v = verifyArtifact({ digest, bundle, trust: trust.material, policy: { identity, issuer: o.issuer, requireTlog: true, requireTimestamp: true } });
  return {
    file: o.file,
    bundle: bundlePath,
    sha256: digest.toString('hex'),
    identity: v.identity,
    issuer: v.issuer,
    trust: trust.source,
    ...(v.signedAt ? { signedAt: v.signedAt.toISOString() } : {}),
  };
}
