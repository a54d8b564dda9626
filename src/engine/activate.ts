import type { Config } from '../config/config.ts';
import { formatDuration } from '../config/duration.ts';
import { CutoverError } from '../errors.ts';
import { healthGate, type GateResult } from '../health/probe.ts';
import type { Layout } from '../layout/paths.ts';
import type { RestartOutcome } from '../service/systemd.ts';
import { writeState, type State } from '../state/state.ts';
import type { Services } from './services.ts';
import { settle, switchTo } from './switch.ts';

export interface Activation {
  ok: boolean;
  /** The unit that failed to start, or the health gate's last verdict. */
  reason: string;
  restarted: string[];
  gate?: GateResult;
  ms: number;
}

/** How long one unit may take to (re)start before cutover gives up on it. */
function restartTimeout(config: Config): number {
  return Math.max(30_000, config.health?.timeoutMs ?? 90_000);
}

export function journalHint(config: Config): string {
  return `journalctl ${config.service.units.map((u) => `-u ${u}`).join(' ')} --since "-15min"`;
}

/**
 * Restart the units in order, each waited for, then run the health gate against `version`.
 * Never throws for an unhealthy release: the caller decides what to do about it.
 */
export async function activate(config: Config, services: Services, version: string, signal: AbortSignal): Promise<Activation> {
  const started = Date.now();
  const restarted: string[] = [];
  /** Restart counters right after our restarts: a rise during the gate is a crash loop. */
  const baseline = new Map<string, number>();
  const { reporter, serviceManager } = services;
  for (const unit of config.service.units) {
    signal.throwIfAborted();
    reporter.step(`Restarting ${unit}`);
    // Our own restarts must not eat the unit's start limit (systemd counts every start): a
    // quick update and rollback would otherwise look like a crash loop.
    await serviceManager.resetFailed(unit);
    const r: RestartOutcome = await serviceManager.restart(unit, restartTimeout(config));
    if (!r.ok) return { ok: false, reason: `${unit} ${r.reason}`, restarted, ms: Date.now() - started };
    baseline.set(unit, r.state?.nRestarts ?? 0);
    restarted.push(unit);
  }
  if (!config.health) return { ok: true, reason: 'ok', restarted, ms: Date.now() - started };
  const h = config.health;
  reporter.step(`Checking health at ${h.url.href} (${h.successes} good answers in a row within ${formatDuration(h.timeoutMs)})`);
  let crashed: string | undefined;
  const watch = new AbortController();
  const gateSignal = AbortSignal.any([signal, watch.signal]);
  let gate: GateResult;
  try {
    gate = await healthGate(h, h.expectVersion ? version : undefined, {
      signal: gateSignal,
      onProbe: (p, streak) => {
        if (!p.ok) reporter.step(`  health: ${p.reason}`);
        else if (streak === 1 || streak === h.successes) reporter.step(`  health: ok (${streak}/${h.successes})`);
        // A unit that crash-looped into its start limit will not come back: stop waiting.
        void checkUnits(config, services, baseline).then((bad) => {
          if (bad && !crashed) {
            crashed = bad;
            watch.abort();
          }
        });
      },
    });
  } catch (e) {
    if (crashed && !signal.aborted) {
      return { ok: false, reason: crashed, restarted, ms: Date.now() - started };
    }
    throw e;
  }
  // Healthy answers while a unit is being restarted by systemd behind our back do not count.
  crashed ??= gate.healthy ? await checkUnits(config, services, baseline) : undefined;
  if (!gate.healthy || crashed) {
    const why = crashed ?? `health check failed: ${gate.last?.reason ?? 'no answer'} (after ${gate.probes} probes in ${formatDuration(gate.ms)})`;
    return { ok: false, reason: why, restarted, gate, ms: Date.now() - started };
  }
  return { ok: true, reason: 'ok', restarted, gate, ms: Date.now() - started };
}

/** A unit that failed, or that systemd had to restart since we started it: a crash (loop). */
async function checkUnits(config: Config, services: Services, baseline: Map<string, number>): Promise<string | undefined> {
  for (const unit of config.service.units) {
    const s = await services.serviceManager.state(unit).catch(() => undefined);
    if (!s) continue;
    if (s.activeState === 'failed') return `${unit} failed (result: ${s.result}${s.nRestarts ? `, ${s.nRestarts} restarts` : ''})`;
    const before = baseline.get(unit) ?? 0;
    if (s.nRestarts > before) return `${unit} crashed and was restarted by systemd ${s.nRestarts - before} time(s) during the health gate`;
    if (s.activeState !== 'active') return `${unit} is ${s.activeState}/${s.subState} during the health gate`;
  }
  return undefined;
}

/**
 * The new release is bad: switch back, clear the units' failed state, restart them on the
 * previous release and check its health. Throws E_UNHEALTHY (8) when the previous release is
 * healthy again, E_ROLLBACK_FAILED (9) when not, each saying exactly where things stand.
 */
export async function rollBackUnhealthy(
  config: Config,
  services: Services,
  layout: Layout,
  state: State,
  bad: string,
  good: string | null,
  why: string,
  previousBefore: string | null,
  opts: { markBad: boolean } = { markBad: true },
): Promise<never> {
  const { reporter } = services;
  const logs = journalHint(config);
  if (opts.markBad && !state.bad.includes(bad)) state.bad.push(bad);
  await writeState(layout, state);
  if (good === null) {
    throw new CutoverError('E_ROLLBACK_FAILED', `v${bad} is unhealthy (${why}) and there is no previous release to return to; current stays on v${bad}`, {
      hint: `read \`${logs}\`, fix the cause, then install a good release with \`update --version\``,
      details: { bad, current: bad, reason: why },
    });
  }
  reporter.warn(`v${bad} is unhealthy: ${why}; rolling back to v${good}`);
  const rollbackStarted = Date.now();
  // Rolling back must not be cut short by the signal that may have caused it.
  const never = new AbortController().signal;
  await switchTo(layout, state, bad, good, 'rollback', services, { activating: true });
  state.previous = previousBefore;
  await writeState(layout, state);
  // activate() clears each unit's failed state before restarting it.
  const again = await activate(config, services, good, never);
  await settle(layout, state);
  const rollbackMs = Date.now() - rollbackStarted;
  if (!again.ok) {
    throw new CutoverError(
      'E_ROLLBACK_FAILED',
      `v${bad} was unhealthy (${why}); current was switched back to v${good}, but v${good} is not healthy either: ${again.reason}`,
      {
        hint: `current points at releases/v${good}; units: ${config.service.units.join(', ')}; read \`${logs}\` and fix by hand, then \`systemctl restart\` them`,
        details: { bad, current: good, reason: why, rollbackReason: again.reason, rollbackMs },
      },
    );
  }
  throw new CutoverError('E_UNHEALTHY', `v${bad} was unhealthy (${why}); rolled back to v${good}, which is healthy again (in ${formatDuration(rollbackMs)})`, {
    hint: `${opts.markBad ? `v${bad} is marked bad and will not be installed automatically; its` : 'the'} logs: \`${logs}\``,
    details: { bad, current: good, reason: why, rollbackMs },
  });
}
