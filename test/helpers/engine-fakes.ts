/**
 * Fakes for the engine's waiting edges: the service manager, the health probe and the clock.
 * Everything else an in-process engine test uses is real (HTTPS server, Sigstore bundles, tar,
 * the install root on disk). The real ones have their own tests with a real systemd.
 */
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import type { Clock, Services } from '../../src/engine/services.ts';
import { HttpClient } from '../../src/download/http.ts';
import type { GateResult, HealthChecker, ProbeResult } from '../../src/health/probe.ts';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { RecordingReporter } from '../../src/report.ts';
import { World } from './world.ts';
import type { RestartOutcome, ServiceManager, UnitState } from '../../src/service/systemd.ts';

/** The version `current` points at right now, as a unit would run it. */
export function runningVersion(root: string): string {
  try {
    return readlinkSync(path.join(root, 'current')).replace(/^releases\/v/, '');
  } catch {
    return '(none)';
  }
}

/** Records `unit@version` for every restart; can fail or block a unit on a version. */
export class FakeServiceManager implements ServiceManager {
  readonly restarts: string[] = [];
  /** Every call in order: `restart unit@version`, `start unit@version`, `stop unit`. */
  readonly calls: string[] = [];
  /** `unit@version` -> why it fails to start. */
  readonly failing = new Map<string, string>();
  /** Called when a restart starts; the restart completes when the returned promise does. */
  onRestart: ((unit: string, version: string) => Promise<void>) | undefined;
  private readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  async restart(unit: string, _timeoutMs: number): Promise<RestartOutcome> {
    const version = runningVersion(this.root);
    this.restarts.push(`${unit}@${version}`);
    this.calls.push(`restart ${unit}@${version}`);
    await this.onRestart?.(unit, version);
    const why = this.failing.get(`${unit}@${version}`);
    if (why) return { ok: false, unit, reason: why, state: undefined };
    return { ok: true, unit, reason: 'ok', state: this.stateOf(unit) };
  }
  async start(unit: string, _timeoutMs: number): Promise<RestartOutcome> {
    const version = runningVersion(this.root);
    this.calls.push(`start ${unit}@${version}`);
    await this.onRestart?.(unit, version);
    const why = this.failing.get(`${unit}@${version}`);
    if (why) return { ok: false, unit, reason: why, state: undefined };
    return { ok: true, unit, reason: 'ok', state: this.stateOf(unit) };
  }
  async stop(unit: string, _timeoutMs: number): Promise<RestartOutcome> {
    this.calls.push(`stop ${unit}`);
    return { ok: true, unit, reason: 'ok', state: this.stateOf(unit) };
  }
  async resetFailed(): Promise<void> {}
  async state(unit: string): Promise<UnitState> {
    return this.stateOf(unit);
  }
  private stateOf(unit: string): UnitState {
    return { unit, activeState: 'active', subState: 'running', result: 'success', mainPid: 1, nRestarts: 0 };
  }
}

/** A health endpoint that answers for whatever `current` runs; versions in `unhealthy` fail. */
export class FakeHealth implements HealthChecker {
  readonly url = 'http://fake/health';
  readonly successes = 2;
  readonly timeoutMs = 1000;
  readonly unhealthy = new Set<string>();
  readonly gates: string[] = [];
  /** Called when a gate starts; the gate answers when the returned promise does. */
  onGate: ((version: string | undefined, signal: AbortSignal) => Promise<void>) | undefined;
  private readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  async gate(
    expectVersion: string | undefined,
    opts: { signal: AbortSignal; quick?: boolean; onProbe?: (r: ProbeResult, streak: number) => void },
  ): Promise<GateResult> {
    this.gates.push(`${opts.quick ? 'preflight' : 'gate'}@${expectVersion ?? '-'}`);
    await this.onGate?.(expectVersion, opts.signal);
    opts.signal.throwIfAborted();
    const running = runningVersion(this.root);
    const ok = !this.unhealthy.has(running) && (expectVersion === undefined || expectVersion === running);
    const last: ProbeResult = { ok, reason: ok ? 'ok' : `HTTP 500 from v${running}`, status: ok ? 200 : 500, ms: 1 };
    opts.onProbe?.(last, ok ? 1 : 0);
    return { healthy: ok, probes: 1, last, ms: 1 };
  }
}

/** Time that moves 5 ms per reading: durations are deterministic. */
export class FakeClock implements Clock {
  t = Date.parse('2026-12-01T00:00:00Z');
  now(): number {
    this.t += 5;
    return this.t;
  }
}

export interface FakeServices extends Services {
  serviceManager: FakeServiceManager;
  health: FakeHealth;
  reporter: RecordingReporter;
  clock: FakeClock;
}

/** Real HTTP (to the test's HTTPS server, trusting its CA), fake service manager, probe and clock. */
export function fakeServices(root: string, caFile: string): FakeServices {
  return {
    http: new HttpClient({ caFile, idleTimeoutMs: 5_000, minSpeed: 0, minSpeedTimeMs: 30_000 }),
    reporter: new RecordingReporter(),
    serviceManager: new FakeServiceManager(root),
    health: new FakeHealth(root),
    clock: new FakeClock(),
  };
}

/**
 * A World (real HTTPS server, real bundles) serving v1.0.0, v2.0.0 and v3.0.0, and its config
 * with two units and a [health] section (answered by FakeHealth, never by that URL).
 */
export async function engineWorld(): Promise<{ w: World; config: Config }> {
  const w = await World.create();
  w.writeConfig({
    keep: 5,
    top: `[service]
units = ["a.service", "b.service"]

[health]
url = "http://127.0.0.1:9/health"
`,
  });
  const config = await loadConfig(w.configFile);
  for (const v of ['1.0.0', '2.0.0', '3.0.0']) await w.publish(v);
  return { w, config };
}
