import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config } from '../config/config.ts';
import { formatDuration } from '../config/duration.ts';
import { nextWindowStart } from '../config/window.ts';
import { createServices } from '../engine/services.ts';
import { guardConfig } from '../engine/guard.ts';
import { assess } from '../engine/check.ts';
import { bump } from '../engine/policy.ts';
import { runUpdate } from '../engine/update.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf } from '../layout/paths.ts';
import { readCurrent } from '../layout/swap.ts';
import type { Reporter } from '../report.ts';
import { escapeControls } from '../text.ts';
import { readState } from '../state/state.ts';
import type { Notifier } from './notify.ts';

/** Lines journald keeps with their priority (SyslogLevelPrefix): <3> error, <4> warning, <6> info. */
export class JournalReporter implements Reporter {
  private readonly out: NodeJS.WritableStream;
  constructor(out: NodeJS.WritableStream = process.stderr) {
    this.out = out;
  }
  step(message: string): void {
    this.line(6, message);
  }
  warn(message: string): void {
    this.line(4, message);
  }
  error(message: string): void {
    this.line(3, message);
  }
  progress(): void {}
  line(priority: number, message: string): void {
    this.out.write(`<${priority}>${escapeControls(message)}\n`);
  }
}

export interface DaemonDeps {
  notifier: Notifier;
  reporter: JournalReporter;
  now: () => Date;
  /** Extra random delay added to each interval, as a fraction of it. */
  jitter: number;
}

interface Status {
  current: string | null;
  lastCheck: Date | null;
  nextCheck: Date | null;
  lastResult: string;
}

/**
 * `app daemon`: a systemd Type=notify service that checks for releases on a schedule and
 * installs them by itself within daemon.auto and daemon.window. It shares the lock with the
 * CLI: whoever comes second waits for the next round (daemon) or exits 7 (CLI).
 */
export async function runDaemon(configFile: string, deps: DaemonDeps, stop: AbortSignal): Promise<void> {
  const { notifier, reporter } = deps;
  let config = await loadConfig(configFile);
  // Fail at start, not at the first round, when another user could edit what root obeys.
  guardConfig(config);
  const layout = layoutOf(config.root);
  await readState(layout);
  const status: Status = { current: await readCurrent(layout), lastCheck: null, nextCheck: null, lastResult: 'starting' };
  const pushStatus = (): Promise<void> => notifier.notify({ STATUS: statusLine(status) });

  let watchdog: NodeJS.Timeout | undefined;
  if (notifier.watchdogMs) {
    const every = Math.max(500, Math.floor(notifier.watchdogMs / 2));
    watchdog = setInterval(() => void notifier.notify({ WATCHDOG: '1' }), every);
    watchdog.unref();
  }
  reporter.step(
    `cutover daemon for ${config.app} at ${config.root}: checking ${config.source.index.href} every ${formatDuration(config.daemon.intervalMs)}, auto = ${config.daemon.auto}${config.daemon.window ? `, window ${config.daemon.window.text}` : ''}`,
  );
  await notifier.notify({ READY: '1', STATUS: statusLine(status) });

  try {
    while (!stop.aborted) {
      status.lastCheck = deps.now();
      const result = await checkOnce(config, reporter, deps.now(), stop).catch((e: unknown) => {
        const line = describeFailure(e);
        if (e instanceof CutoverError && e.code === 'E_LOCKED') reporter.warn(line);
        else reporter.error(line);
        return line;
      });
      status.lastResult = result;
      status.current = await readCurrent(layoutOf(config.root)).catch(() => status.current);
      const wait = Math.round(config.daemon.intervalMs * (1 + Math.random() * deps.jitter));
      status.nextCheck = new Date(deps.now().getTime() + wait);
      await pushStatus();
      await sleep(wait, undefined, { signal: stop }).catch(() => {});
      if (stop.aborted) break;
      // Picked up for the next round: an operator's edit needs no restart.
      try {
        config = await loadConfig(configFile);
      } catch (e) {
        reporter.error(`config: ${(e as CutoverError).message ?? String(e)}; keeping the previous one`);
      }
    }
  } finally {
    if (watchdog) clearInterval(watchdog);
    reporter.step('stopping');
    await notifier.notify({ STOPPING: '1', STATUS: 'stopping' });
  }
}

/** One round: look at the index, decide, maybe install. Returns a one-line result. */
async function checkOnce(config: Config, reporter: JournalReporter, now: Date, stop: AbortSignal): Promise<string> {
  const services = createServices(config, reporter);
  try {
    const { decision: d } = await assess(config, { ...services, reporter: quiet(reporter) }, now, stop);
    if (d.action === 'hold' && config.daemon.window) {
      const at = nextWindowStart(config.daemon.window, now);
      reporter.step(`${d.reason} (next opens ${at.toISOString()})`);
      return `waiting for window: v${d.target?.version}`;
    }
    if (d.action !== 'install' || !d.target) {
      reporter.step(d.reason);
      return d.newest ? `up to date policy-wise (${d.reason})` : d.reason;
    }
    reporter.step(`installing: ${d.reason}`);
    if (d.newest && d.newest.version !== d.target.version) {
      reporter.step(
        `v${d.newest.version} is also available (${bump(d.target.version, d.newest.version)} update); daemon.auto = "${config.daemon.auto}" leaves it to a manual \`update\``,
      );
    }
    const r = await runUpdate(config, services, {
      version: d.target.version,
      dryRun: false,
      allowDowngrade: false,
      signal: stop,
      allowSchemaChange: config.daemon.migrations === 'auto',
    });
    reporter.step(`installed v${r.to} (was ${r.from ? `v${r.from}` : 'none'})`);
    return `installed v${r.to}`;
  } finally {
    await services.http.close();
  }
}

function quiet(r: Reporter): Reporter {
  return { step() {}, warn: (m) => r.warn(m), progress() {} };
}

function describeFailure(e: unknown): string {
  if (e instanceof CutoverError) {
    if (e.code === 'E_LOCKED') return 'skipped: another operation holds the lock';
    return `${e.code}: ${e.message}`;
  }
  return `E_INTERNAL: ${(e as Error)?.message ?? String(e)}`;
}

function statusLine(s: Status): string {
  const t = (d: Date | null): string => (d ? d.toISOString().replace(/\.\d+Z$/, 'Z') : 'never');
  return `current ${s.current ? `v${s.current}` : 'none'}; last check ${t(s.lastCheck)}: ${s.lastResult}; next check ${t(s.nextCheck)}`;
}
