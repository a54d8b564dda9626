import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { healthGate } from '../health/probe.ts';
import type { Services } from './services.ts';

/**
 * Before touching anything: is the current deployment healthy? If it is not, an update would
 * be blamed for a problem it did not cause, and the health gate could not tell the difference.
 */
export async function preflight(
  config: Config,
  services: Services,
  current: string,
  opts: { force: boolean; signal: AbortSignal },
): Promise<void> {
  const h = config.health;
  if (!h) return;
  services.reporter.step(`Pre-flight: checking that v${current} is healthy at ${h.url.href}`);
  const gate = await healthGate(
    { ...h, successes: 1, timeoutMs: Math.min(h.timeoutMs, Math.max(h.probeTimeoutMs * 3, 15_000)) },
    h.expectVersion ? current : undefined,
    { signal: opts.signal },
  );
  if (gate.healthy) return;
  const why = gate.last?.reason ?? 'no answer';
  if (opts.force) {
    services.reporter.warn(`v${current} is not healthy (${why}); updating anyway (--force)`);
    return;
  }
  throw new CutoverError('E_PREFLIGHT', `the current release v${current} is not healthy before the update: ${why}`, {
    hint: 'fix the running deployment first (a new release would be blamed for it), or pass --force',
    details: { current, reason: why },
  });
}
