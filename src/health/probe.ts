import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import type { HealthConfig } from '../config/config.ts';
import { untrusted } from '../text.ts';

export interface ProbeResult {
  ok: boolean;
  /** Why it is not ok, or "ok". */
  reason: string;
  status?: number;
  version?: string;
  ms: number;
}

export interface GateResult {
  healthy: boolean;
  probes: number;
  /** The last probe's verdict: what an operator reads when the gate fails. */
  last: ProbeResult | undefined;
  ms: number;
}

const MAX_BODY = 64 * 1024;

/**
 * One health probe: GET the URL on a fresh connection (a kept-alive socket could reach an old
 * process), with its own deadline. 2xx is healthy; with `expectVersion`, the answer must also
 * report that version (JSON field "version" or an X-App-Version header).
 */
async function probeOnce(cfg: HealthConfig, agent: Agent, expectVersion: string | undefined, signal: AbortSignal): Promise<ProbeResult> {
  const started = Date.now();
  const ms = (): number => Date.now() - started;
  try {
    const res = await request(cfg.url, {
      method: 'GET',
      dispatcher: agent,
      reset: true,
      signal: AbortSignal.any([signal, AbortSignal.timeout(cfg.probeTimeoutMs)]),
      headers: { accept: 'application/json' },
    });
    let body = '';
    for await (const chunk of res.body) {
      body += (chunk as Buffer).toString('utf8');
      if (body.length > MAX_BODY) {
        res.body.destroy();
        break;
      }
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      return { ok: false, reason: `HTTP ${res.statusCode}`, status: res.statusCode, ms: ms() };
    }
    const version = reportedVersion(res.headers['x-app-version'], body);
    if (expectVersion !== undefined) {
      if (version === undefined) {
        return { ok: false, reason: 'answer reports no version (JSON "version" or X-App-Version)', status: res.statusCode, ms: ms() };
      }
      if (version.replace(/^v/, '') !== expectVersion.replace(/^v/, '')) {
        // The answer is the app's, not ours: quoted and escaped before it reaches any output.
        const shown = untrusted(version);
        return { ok: false, reason: `answer reports version "${shown}", expected ${expectVersion}`, status: res.statusCode, version: shown, ms: ms() };
      }
    }
    return { ok: true, reason: 'ok', status: res.statusCode, ...(version ? { version: untrusted(version) } : {}), ms: ms() };
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    const err = e as Error & { code?: string };
    const reason =
      err.name === 'TimeoutError' || err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT'
        ? `no answer within ${cfg.probeTimeoutMs} ms`
        : untrusted(err.code ?? err.message);
    return { ok: false, reason, ms: ms() };
  }
}

function reportedVersion(header: string | string[] | undefined, body: string): string | undefined {
  if (typeof header === 'string' && header.trim()) return header.trim();
  try {
    const j = JSON.parse(body) as unknown;
    if (j && typeof j === 'object' && typeof (j as { version?: unknown }).version === 'string') {
      return (j as { version: string }).version;
    }
  } catch {
    // Not JSON: only the header can report a version.
  }
  return undefined;
}

/**
 * The health gate: `successes` consecutive good probes within `timeout` (a probe started before
 * the deadline may finish after it, by at most one probe timeout). Any bad probe resets the count,
 * so a flapping service does not pass.
 */
export async function healthGate(
  cfg: HealthConfig,
  expectVersion: string | undefined,
  opts: { signal: AbortSignal; onProbe?: (r: ProbeResult, streak: number) => void },
): Promise<GateResult> {
  const started = Date.now();
  const deadline = started + cfg.timeoutMs;
  const agent = new Agent({ headersTimeout: cfg.probeTimeoutMs, bodyTimeout: cfg.probeTimeoutMs, connect: { timeout: cfg.probeTimeoutMs } });
  let streak = 0;
  let probes = 0;
  let last: ProbeResult | undefined;
  try {
    while (Date.now() < deadline) {
      opts.signal.throwIfAborted();
      // A probe started before the deadline gets its full per-probe timeout, so the verdict
      // an operator reads is never an artefact of the deadline cutting a probe short.
      last = await probeOnce(cfg, agent, expectVersion, opts.signal);
      probes++;
      streak = last.ok ? streak + 1 : 0;
      opts.onProbe?.(last, streak);
      if (streak >= cfg.successes) return { healthy: true, probes, last, ms: Date.now() - started };
      const wait = Math.min(cfg.intervalMs, deadline - Date.now());
      if (wait > 0) await sleep(wait, undefined, { signal: opts.signal });
    }
    return { healthy: false, probes, last, ms: Date.now() - started };
  } finally {
    await agent.destroy().catch(() => {});
  }
}

/** The health probe as the engine sees it: the real one below, a scripted one in engine tests. */
export interface HealthChecker {
  readonly url: string;
  readonly successes: number;
  readonly timeoutMs: number;
  /** The gate: `successes` good answers in a row; `quick`: the pre-flight's single answer in a short window. */
  gate(
    expectVersion: string | undefined,
    opts: { signal: AbortSignal; quick?: boolean; onProbe?: (r: ProbeResult, streak: number) => void },
  ): Promise<GateResult>;
}

export function httpHealthChecker(cfg: HealthConfig): HealthChecker {
  return {
    url: cfg.url.href,
    successes: cfg.successes,
    timeoutMs: cfg.timeoutMs,
    gate(expectVersion, opts) {
      const c = opts.quick ? { ...cfg, successes: 1, timeoutMs: Math.min(cfg.timeoutMs, Math.max(cfg.probeTimeoutMs * 3, 15_000)) } : cfg;
      return healthGate(c, cfg.expectVersion ? expectVersion : undefined, opts);
    },
  };
}
