import { inspect } from 'node:util';
/**
 * Loading Sigstore trust material: the one place in verify/ that does I/O.
 *
 * Three sources, in order of preference:
 * - `file`: an operator-supplied trusted_root.json (`trust.trusted_root` in the config);
 * - `tuf`: the public-good trusted root, fetched and verified through Sigstore's TUF repo;
 * - `embedded`: the trusted root @sigstore/tuf ships in its seeds.json, used only when TUF
 *   cannot be reached and the caller allows it. It is as authentic as the installed package,
 *   but may be older than the live one.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial } from '@sigstore/verify';
import type { TrustMaterial } from '@sigstore/verify';
import { ASSETS, embeddedText, embeddedVersions } from '../system/embedded.ts';
import { CutoverError, errnoCode } from '../errors.ts';

type TrustSource = 'file' | 'tuf' | 'embedded';

export interface LoadTrustOptions {
  /** Operator-supplied trusted_root.json. When set, TUF is not consulted. */
  trustedRootPath?: string;
  /** Directory for the TUF metadata cache. */
  tufCachePath: string;
  signal?: AbortSignal;
  /** Use the trusted root embedded in @sigstore/tuf when TUF fails. Default true. */
  offlineFallback?: boolean;
  /** TUF mirror; the public-good CDN unless set (tests point it somewhere unreachable). */
  tufMirrorURL?: string;
  /** Deadline for the whole TUF refresh, ms. Default 15 s. */
  deadlineMs?: number;
}

export interface LoadedTrust {
  material: TrustMaterial;
  source: TrustSource;
  /** The file read, for `source: 'file'`. */
  path?: string;
  /** Why a fallback was taken, for `source: 'embedded'`. */
  note?: string;
}

const DEFAULT_TUF_DEADLINE_MS = 15_000;
const TRUSTED_ROOT_TARGET = 'trusted_root.json';
/** @sigstore/tuf's DEFAULT_MIRROR_URL, kept here so the module need not be loaded to name it. */
const DEFAULT_MIRROR_URL = 'https://tuf-repo-cdn.sigstore.dev';

export async function loadTrustMaterial(opts: LoadTrustOptions): Promise<LoadedTrust> {
  if (opts.trustedRootPath !== undefined) {
    const root = await readTrustedRootFile(opts.trustedRootPath);
    return { material: toMaterial(root, opts.trustedRootPath), source: 'file', path: opts.trustedRootPath };
  }

  let tufFailure: unknown;
  try {
    const root = await fetchTufTrustedRoot(opts);
    return { material: toMaterial(root, 'the TUF trusted root'), source: 'tuf' };
  } catch (e) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (e instanceof CutoverError) throw e;
    tufFailure = e;
  }

  const reason = causeChain(tufFailure);
  if (opts.offlineFallback === false) {
    throw new CutoverError('E_SIG_TRUST_ROOT', `cannot fetch the Sigstore trusted root through TUF: ${reason}`, {
      hint: 'check network access to tuf-repo-cdn.sigstore.dev, or set trust.trusted_root to a trusted_root.json file',
      cause: tufFailure,
    });
  }
  const embedded = await readEmbeddedTrustedRoot();
  return {
    material: toMaterial(embedded.root, embedded.where),
    source: 'embedded',
    note: `TUF refresh failed (${reason}); using the trusted root embedded in ${embedded.where}`,
  };
}

/** Parse trusted_root.json text into the protobuf type. `where` names the source in errors. */
function parseTrustedRoot(text: string, where: string): TrustedRoot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw badRoot(`${where} is not valid JSON: ${(e as Error).message}`, e);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw badRoot(`${where} is not a JSON object`);
  }
  checkValidity(json as Record<string, unknown>, where);
  let root: TrustedRoot;
  try {
    root = TrustedRoot.fromJSON(json);
  } catch (e) {
    throw badRoot(`${where} is not a Sigstore trusted root: ${(e as Error).message}`, e);
  }
  if (root.certificateAuthorities.length === 0) {
    throw badRoot(`${where} lists no certificate authorities`);
  }
  return root;
}

/**
 * Every key and authority must say since when it is valid. A missing `validFor.start` is not
 * "valid since forever": the library would read it so, and a key with no start would vouch for
 * signatures from before it existed. Refuse such a root (sigstore-conformance's
 * trust-root-tlog-missing-validity-start_fail), as well as an end before the start.
 */
function checkValidity(json: Record<string, unknown>, where: string): void {
  const lists: Array<[string, (e: Record<string, unknown>) => unknown]> = [
    ['tlogs', (e) => (e.publicKey as Record<string, unknown> | undefined)?.validFor],
    ['ctlogs', (e) => (e.publicKey as Record<string, unknown> | undefined)?.validFor],
    ['certificateAuthorities', (e) => e.validFor],
    ['timestampAuthorities', (e) => e.validFor],
  ];
  for (const [key, validForOf] of lists) {
    const list = json[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw badRoot(`${where}: ${key} is not a list`);
    list.forEach((entry: unknown, i) => {
      const e = (entry ?? {}) as Record<string, unknown>;
      const name = `${key}[${i}]${describeEntry(e)}`;
      const v = validForOf(e) as Record<string, unknown> | undefined;
      if (!v || typeof v !== 'object') throw badRoot(`${where}: ${name} has no validFor period`);
      const start = typeof v.start === 'string' ? Date.parse(v.start) : NaN;
      if (Number.isNaN(start)) throw badRoot(`${where}: ${name} has no valid validFor.start, so it would be trusted for any time`);
      // An absent or null end means "still valid" (protobuf JSON writes either).
      if (v.end !== undefined && v.end !== null) {
        const end = typeof v.end === 'string' ? Date.parse(v.end) : NaN;
        if (Number.isNaN(end) || end < start) throw badRoot(`${where}: ${name} has a validFor.end that is invalid or before its start`);
      }
    });
  }
}

function describeEntry(e: Record<string, unknown>): string {
  const logId = (e.logId as Record<string, unknown> | undefined)?.keyId;
  if (typeof logId === 'string') return ` (logId ${logId.slice(0, 16)}…)`;
  const uri = e.uri ?? (e.subject as Record<string, unknown> | undefined)?.commonName;
  return typeof uri === 'string' ? ` (${JSON.stringify(uri.slice(0, 80))})` : '';
}

async function readTrustedRootFile(file: string): Promise<TrustedRoot> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const errno = errnoCode(e);
    throw new CutoverError('E_SIG_TRUST_ROOT', `cannot read trusted root ${file}: ${(e as Error).message}`, {
      hint:
        errno === 'ENOENT'
          ? 'fix trust.trusted_root in the config, or remove it to use the public-good root via TUF'
          : 'check the file permissions, or remove trust.trusted_root to use the public-good root via TUF',
      cause: e,
    });
  }
  return parseTrustedRoot(text, file);
}

async function fetchTufTrustedRoot(opts: LoadTrustOptions): Promise<TrustedRoot> {
  const deadlineMs = opts.deadlineMs ?? DEFAULT_TUF_DEADLINE_MS;
  const deadline = AbortSignal.timeout(deadlineMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  signal.throwIfAborted();

  // tuf-js takes no AbortSignal: race it. A losing refresh finishes (or fails) in the
  // background and at worst leaves a fresher cache behind.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () =>
      reject(deadline.aborted && !opts.signal?.aborted ? new Error(`TUF refresh did not finish within ${deadlineMs} ms`) : asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  // Loaded only on this path: a pinned trusted_root never pays for the TUF client (memory, start-up).
  const { getTrustedRoot } = await import('@sigstore/tuf');
  try {
    return await Promise.race([
      getTrustedRoot({
        cachePath: opts.tufCachePath,
        mirrorURL: opts.tufMirrorURL ?? DEFAULT_MIRROR_URL,
        timeout: deadlineMs,
        retry: false,
      }),
      aborted,
    ]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

interface Seeds {
  [mirror: string]: { targets?: Record<string, string> } | undefined;
}

async function readEmbeddedTrustedRoot(): Promise<{ root: TrustedRoot; where: string }> {
  let where = '@sigstore/tuf';
  try {
    // The single executable carries the seed (system/embedded.ts); a source install reads the package.
    const embedded = embeddedVersions();
    let seedsText: string;
    if (embedded) {
      where = `@sigstore/tuf@${embedded.sigstoreTuf}`;
      seedsText = embeddedText(ASSETS.tufSeeds) as string;
    } else {
      const require = createRequire(import.meta.url);
      const pkg = JSON.parse(await readFile(require.resolve('@sigstore/tuf/package.json'), 'utf8')) as { version?: string };
      where = `@sigstore/tuf@${pkg.version ?? '?'}`;
      seedsText = await readFile(require.resolve('@sigstore/tuf/seeds.json'), 'utf8');
    }
    const seeds = JSON.parse(seedsText) as Seeds;
    const encoded = seeds[DEFAULT_MIRROR_URL]?.targets?.[TRUSTED_ROOT_TARGET];
    if (encoded === undefined) throw new Error(`seeds.json has no ${TRUSTED_ROOT_TARGET} for ${DEFAULT_MIRROR_URL}`);
    const root = parseTrustedRoot(Buffer.from(encoded, 'base64').toString('utf8'), `${where} seeds.json`);
    return { root, where };
  } catch (e) {
    if (e instanceof CutoverError) throw e;
    throw badRoot(`cannot read the trusted root embedded in ${where}: ${(e as Error).message}`, e);
  }
}

function toMaterial(root: TrustedRoot, where: string): TrustMaterial {
  try {
    return toTrustMaterial(root);
  } catch (e) {
    throw badRoot(`${where} holds an unusable key or certificate: ${(e as Error).message}`, e);
  }
}

/** "error refreshing TUF metadata: fetch failed: getaddrinfo ENOTFOUND ..." */
function causeChain(e: unknown): string {
  const parts: string[] = [];
  for (let cur = e, depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const message = cur instanceof Error ? cur.message : typeof cur === 'string' ? cur : inspect(cur);
    if (message && parts.at(-1) !== message) parts.push(message);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(': ');
}

function badRoot(message: string, cause?: unknown): CutoverError {
  return new CutoverError('E_SIG_TRUST_ROOT', message, {
    hint: 'point trust.trusted_root at a valid trusted_root.json (as published by Sigstore), or remove it to use the public-good root via TUF',
    cause,
  });
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(typeof reason === 'string' ? reason : inspect(reason));
}
