import type { Config } from '../config/config.ts';
import type { Layout } from '../layout/paths.ts';
import type { State } from '../state/state.ts';
import type { EngineContext } from './executor.ts';
import type { Services } from './services.ts';

/** The one place the engine's context is made from the config: each step sees only its part. */
export function engineContext(
  config: Pick<Config, 'app' | 'source' | 'trust' | 'disk' | 'service'>,
  services: Services,
  layout: Layout,
  state: State,
  signal: AbortSignal,
  sandbox: EngineContext['sandbox'] = null,
): EngineContext {
  return {
    app: config.app,
    layout,
    sandbox,
    source: { timeoutMs: config.source.timeoutMs },
    trust: { trustedRoot: config.trust.trustedRoot, requireTlog: config.trust.requireTlog, requireTimestamp: config.trust.requireTimestamp },
    disk: { maxRatio: config.disk.maxRatio },
    units: config.service.units,
    services,
    state,
    signal,
  };
}
