import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { formatDuration } from '../config/duration.ts';
import { CutoverError, errnoCode } from '../errors.ts';
import { formatBytes } from '../report.ts';

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
  /** Throughput floor, bytes per second, like curl's --speed-limit; 0 or absent: off. */
  minSpeed?: number;
  /** How long a transfer may stay under minSpeed before it fails, ms (curl's --speed-time). */
  minSpeedTimeMs?: number;
}

/** A response body: read it to the end, or destroy it. */
interface ResponseBody extends AsyncIterable<Buffer> {
  destroy(error?: Error): void;
}

export interface OpenResponse {
  url: URL;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
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
      minSpeed: options.minSpeed ?? 0,
      minSpeedTimeMs: options.minSpeedTimeMs ?? 30_000,
    };
    this.agent = new Agent({
      connect: { ca, rejectUnauthorized: true, minVersion: 'TLSv1.2', timeout: this.opts.connectTimeoutMs },
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
   * A body that arrives slower than the throughput floor is destroyed with a SlowTransferError,
   * retried like a reset connection and reported as E_NET_SLOW when the attempts run out.
   */
  async get<T>(url: URL, signal: AbortSignal, consume: (res: OpenResponse) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      try {
        const res = await this.open(url, signal);
        if (this.opts.minSpeed <= 0) return await consume(res);
        const floor = new SpeedFloor(res.body, res.url, this.opts.minSpeed, this.opts.minSpeedTimeMs);
        try {
          return await consume({ ...res, body: floor.body });
        } finally {
          floor.stop();
        }
      } catch (e) {
        lastError = e;
        if (signal.aborted || !isRetryable(e) || attempt === this.opts.attempts) break;
        await sleep(this.opts.backoffMs * 2 ** (attempt - 1), undefined, { signal }).catch(() => {});
      }
    }
    throw toNetworkError(lastError, url, signal);
  }

  private async open(start: URL, signal: AbortSignal): Promise<OpenResponse & { body: Dispatcher.ResponseData['body'] }> {
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

class HttpStatusError extends Error {
  readonly status: number;
  readonly url: URL;
  constructor(status: number, url: URL) {
    super(`HTTP ${status} from ${url.href}`);
    this.status = status;
    this.url = url;
  }
}

/** Thrown by a consumer when the transfer broke in a way worth retrying (connection reset mid-body). */
class RetryableError extends Error {}

/** A body destroyed by the throughput floor. */
class SlowTransferError extends RetryableError {
  readonly url: URL;
  /** Bytes per second over the last window. */
  readonly speed: number;
  readonly minSpeed: number;
  readonly windowMs: number;
  constructor(url: URL, speed: number, minSpeed: number, windowMs: number) {
    super(`${url.href} arrived at ${Math.round(speed)} B/s, under ${minSpeed} B/s for ${windowMs} ms`);
    this.url = url;
    this.speed = speed;
    this.minSpeed = minSpeed;
    this.windowMs = windowMs;
  }
}

/**
 * The throughput floor for one response, timed from its headers (the wait for headers is
 * idle_timeout's). A rolling window: it fails the transfer when the bytes of the last
 * `windowMs` average under `minSpeed` per second. A stall shorter than the window followed by a
 * burst passes; a steady trickle, which idle_timeout never catches, fails after about windowMs.
 * Counting happens as the consumer reads, sampling on a timer (every tenth of the window, at
 * most a second), so a server that sends nothing at all is caught too.
 */
class SpeedFloor {
  readonly body: ResponseBody;
  private total = 0;
  private readonly samples: Array<{ at: number; bytes: number }>;
  private readonly timer: NodeJS.Timeout;
  private lastTick: number;

  constructor(raw: Dispatcher.ResponseData['body'], url: URL, minSpeed: number, windowMs: number) {
    const start = performance.now();
    this.samples = [{ at: start, bytes: 0 }];
    this.lastTick = start;
    const step = Math.min(1000, Math.max(20, windowMs / 10));
    this.timer = setInterval(() => {
      const now = performance.now();
      // A tick far behind schedule means this process was busy, not the server slow: bytes may be
      // waiting unread in the socket. Judge on the next tick.
      const late = now - this.lastTick > 3 * step;
      this.lastTick = now;
      this.samples.push({ at: now, bytes: this.total });
      // Keep the newest sample at or before the window's start, and everything after it.
      while (this.samples.length > 1 && (this.samples[1]?.at ?? now) <= now - windowMs) this.samples.shift();
      const first = this.samples[0];
      if (late || !first || now - first.at < windowMs) return;
      const speed = ((this.total - first.bytes) * 1000) / (now - first.at);
      if (speed < minSpeed) {
        this.stop();
        raw.destroy(new SlowTransferError(url, speed, minSpeed, windowMs));
      }
    }, step);
    this.timer.unref();
    const count = (n: number): void => {
      this.total += n;
    };
    const stop = (): void => this.stop();
    this.body = {
      async *[Symbol.asyncIterator]() {
        try {
          for await (const chunk of raw as AsyncIterable<Buffer>) {
            count(chunk.length);
            yield chunk;
          }
        } finally {
          stop();
        }
      },
      destroy: (error) => raw.destroy(error),
    };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function isRetryable(e: unknown): boolean {
  if (e instanceof CutoverError) return false;
  if (e instanceof HttpStatusError) return e.status === 408 || e.status === 429 || e.status >= 500;
  if (e instanceof RetryableError) return true;
  const code = errnoCode(e);
  if (code && TLS_CODES.has(code)) return false;
  return true; // connection refused/reset, idle timeouts: transient
}

function toNetworkError(e: unknown, url: URL, signal: AbortSignal): CutoverError {
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
  if (e instanceof SlowTransferError) {
    return new CutoverError(
      'E_NET_SLOW',
      `download of ${e.url.href} ran at ${formatBytes(Math.round(e.speed))}/s, under source.min_speed ${formatBytes(e.minSpeed)}/s for ${formatDuration(e.windowMs)}`,
      {
        hint: 'check the network and the release server; on a slow link lower source.min_speed ("0" turns the floor off)',
        cause: e,
        details: { url: e.url.href, speed: Math.round(e.speed), minSpeed: e.minSpeed, minSpeedTimeMs: e.windowMs },
      },
    );
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
