import semver from 'semver';
import type { Config } from '../config/config.ts';
import { layoutOf } from '../layout/paths.ts';
import { readCurrent } from '../layout/swap.ts';
import { readState } from '../state/state.ts';
import { decide, type Decision } from './policy.ts';
import type { Services } from './services.ts';
import { contractOf, schemaLevel } from './schema-facts.ts';
import { fetchIndex } from './update.ts';

export interface CheckResult {
  op: 'check';
  current: string | null;
  newest: string | null;
  available: boolean;
  /** What the daemon would do: install | hold | none. */
  daemon: 'install' | 'hold' | 'none';
  daemonTarget: string | null;
  reason: string;
}

/** Read-only: the index against what is installed, and the daemon policy's verdict. Shared by `check` and the daemon. */
export async function assess(
  config: Pick<Config, 'root' | 'source' | 'daemon'>,
  services: Pick<Services, 'http' | 'reporter'>,
  now: Date,
  signal: AbortSignal,
): Promise<{ current: string | null; decision: Decision }> {
  const layout = layoutOf(config.root);
  const current = await readCurrent(layout);
  const state = await readState(layout);
  const index = await fetchIndex(config, services, signal);
  const db = schemaLevel(state, current ? await contractOf(layout, current) : null);
  return {
    current,
    decision: decide({
      current,
      releases: index.releases,
      bad: state.bad,
      auto: config.daemon.auto,
      window: config.daemon.window,
      now,
      migrations: config.daemon.migrations,
      schema: db?.schema ?? null,
    }),
  };
}

/** `check`. */
export async function runCheck(config: Config, services: Services, signal: AbortSignal): Promise<CheckResult> {
  const { current, decision: d } = await assess(config, services, new Date(services.clock.now()), signal);
  const newest = d.newest?.version ?? null;
  return {
    op: 'check',
    current,
    newest,
    available: newest !== null && (current === null || semver.gt(newest, current)),
    daemon: d.action,
    daemonTarget: d.target?.version ?? null,
    reason: d.reason,
  };
}
