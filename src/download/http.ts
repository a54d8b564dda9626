import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { CutoverError, errnoCode } from '../errors.ts';

export interface HttpOptions {
  /** Extra CA certificate (PEM file) trusted besides the system roots. */
  caFile?: string | undefined;
  /** Longest silence from the server (headers or between body chunks), ms. */
  idleTimeoutMs: number;
  connectTimeoutMs?: number;
  /** Attempts for retryable failures (connection errors, 408, 429, 5xx). */
  attempts?: number;
  /** Backoff base, ms; doubled each attempt. */
  backoffMs?: number;
}

export interface OpenResponse {
  url: URL;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

const MAX_REDIRECTS = 5;
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

/** The HTTPS client: one place that knows about TLS trust, redirects, retries and deadlines. */
export class HttpClient {
  private readonly agent: Agent;
  private readonly opts: Required<Omit<HttpOptions, 'caFile'>>;

  constructor(options: HttpOptions) {
    let ca: string[] | undefined;
    if (options.caFile) {
      try {
        ca = [...rootCertificates, readFileSync(options.caFile, 'utf8')];
      } catch (e) {
        throw new CutoverError('E_CONFIG', `cannot read source.ca ${options.caFile}: ${(e as Error).message}`, {
          hint: 'point source.ca at a readable PEM file or remove it',
          cause: e,
        });
      }
    }
    this.opts = {
      idleTimeoutMs: options.idleTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
      attempts: options.attempts ?? 3,
      backoffMs: options.backoffMs ?? 500,
    };
    this.agent = new Agent({
      connect: { ca, minVersion: 'TLSv1.2', timeout: this.opts.connectTimeoutMs },
      headersTimeout: this.opts.idleTimeoutMs,
      bodyTimeout: this.opts.idleTimeoutMs,
      keepAliveTimeout: 4_000,
    });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /**
   * GET with redirects that never leave https, bounded retries for transient failures, and the
   * caller's deadline. Resolves with a 200 response whose body the caller must consume or destroy.
   * `consume` runs on the response and may throw a retryable error (RetryableError) to try again.
   */
  async get<T>(url: URL, signal: AbortSignal, consume: (res: OpenResponse) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      try {
        const res = await this.open(url, signal);
        return await consume(res);
      } catch (e) {
        lastError = e;
        if (signal.aborted || !isRetryable(e) || attempt === this.opts.attempts) break;
        await sleep(this.opts.backoffMs * 2 ** (attempt - 1), undefined, { signal }).catch(() => {});
      }
    }
    throw toNetworkError(lastError, url, signal);
  }

  private async open(start: URL, signal: AbortSignal): Promise<OpenResponse> {
    let url = start;
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'https:') {
        throw new CutoverError('E_NET_REDIRECT', `refusing to fetch ${url.href}: not https`, {
          hint: 'the release server must serve (and redirect to) https only; report it to the vendor',
        });
      }
      const res = await request(url, { method: 'GET', dispatcher: this.agent, signal });
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
        res.body.resume();
        const location = res.headers.location;
        if (typeof location !== 'string' || hop >= MAX_REDIRECTS) {
          throw new CutoverError('E_NET_REDIRECT', `too many or broken redirects fetching ${start.href}`, {
            hint: 'check source.index and the release server',
          });
        }
        url = new URL(location, url);
        continue;
      }
      if (res.statusCode !== 200) {
        res.body.resume();
        throw new HttpStatusError(res.statusCode, url);
      }
      return { url, status: res.statusCode, headers: res.headers, body: res.body };
    }
  }
}

export class HttpStatusError extends Error {
  readonly status: number;
  readonly url: URL;
  constructor(status: number, url: URL) {
    super(`HTTP ${status} from ${url.href}`);
    this.status = status;
    this.url = url;
  }
}

/** Thrown by a consumer when the transfer broke in a way worth retrying (connection reset mid-body). */
export class RetryableError extends Error {}

function isRetryable(e: unknown): boolean {
  if (e instanceof CutoverError) return false;
  if (e instanceof HttpStatusError) return e.status === 408 || e.status === 429 || e.status >= 500;
  if (e instanceof RetryableError) return true;
  const code = errnoCode(e);
  if (code && TLS_CODES.has(code)) return false;
  return true; // connection refused/reset, idle timeouts: transient
}

export function toNetworkError(e: unknown, url: URL, signal: AbortSignal): CutoverError {
  if (e instanceof CutoverError) return e;
  if (signal.aborted) {
    const reason = signal.reason as unknown;
    if (reason instanceof CutoverError) return reason;
    if (reason instanceof Error && reason.name === 'TimeoutError') {
      return new CutoverError('E_NET_TIMEOUT', `download of ${url.href} did not finish within its deadline`, {
        hint: 'check the network and the release server, or raise source.timeout',
        cause: e,
      });
    }
    return new CutoverError('E_NET', `download of ${url.href} was interrupted`, { hint: 'run it again', cause: e });
  }
  if (e instanceof HttpStatusError) {
    return new CutoverError('E_NET_STATUS', `release server answered HTTP ${e.status} for ${e.url.href}`, {
      hint: e.status === 404 ? 'the index names a file the server does not have; tell the vendor' : 'retry later or check the release server',
      cause: e,
    });
  }
  const code = errnoCode(e);
  if (code && TLS_CODES.has(code)) {
    return new CutoverError('E_NET_TLS', `TLS to ${url.host} failed: ${(e as Error).message}`, {
      hint: 'the server certificate is not trusted; set source.ca for a private release server',
      cause: e,
    });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new CutoverError('E_NET_TIMEOUT', `${url.host} went silent (${code})`, {
      hint: 'check the network and the release server, or raise source.idle_timeout',
      cause: e,
    });
  }
  return new CutoverError('E_NET', `cannot fetch ${url.href}: ${(e as Error)?.message ?? String(e)}`, {
    hint: 'check the network and that the release server is up',
    cause: e,
  });
}
