import semver from 'semver';
import type { Config } from '../config/config.ts';
import { decide } from '../daemon/policy.ts';
import { layoutOf } from '../layout/paths.ts';
import { readCurrent } from '../layout/swap.ts';
import { readState } from '../state/state.ts';
import type { Services } from './services.ts';
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

/** `check`: read-only; the index against what is installed, and the daemon's policy verdict. */
export async function runCheck(config: Config, services: Services, signal: AbortSignal): Promise<CheckResult> {
  const layout = layoutOf(config.root);
  const current = await readCurrent(layout);
  const state = await readState(layout);
  const index = await fetchIndex(config, services, signal);
  const d = decide({ current, releases: index.releases, bad: state.bad, auto: config.daemon.auto, window: config.daemon.window, now: new Date() });
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
