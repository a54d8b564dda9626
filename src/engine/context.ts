import type { Config } from '../config/config.ts';
import { databaseDriver, runUser } from '../database/backups.ts';
import type { Layout } from '../layout/paths.ts';
import type { State } from '../state/state.ts';
import type { EngineContext } from './executor.ts';
import type { Services } from './services.ts';

/** The one place the engine's context is made from the config: each step sees only its part. */
/** The parts of the config an operation's steps read. */
export type EngineConfig = Pick<Config, 'app' | 'source' | 'trust' | 'disk' | 'service' | 'database' | 'user' | 'backup' | 'migrate'>;

export function engineContext(
  config: EngineConfig,
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
    database: databaseDriver(config),
    backup: { dir: config.backup.dir, reserve: 0 },
    user: runUser(config),
    migrate: { timeoutMs: config.migrate.timeoutMs },
    live: process.stderr.isTTY ? process.stderr : undefined,
    services,
    state,
    signal,
  };
}
