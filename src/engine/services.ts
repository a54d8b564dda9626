import type { Config } from '../config/config.ts';
import { HttpClient } from '../download/http.ts';
import { httpHealthChecker, type HealthChecker } from '../health/probe.ts';
import type { Reporter } from '../report.ts';
import { Systemctl, type ServiceManager } from '../service/systemd.ts';

/** Time as the engine reads it: step durations and the journal's timestamps. */
export interface Clock {
  now(): number;
}

const systemClock: Clock = { now: () => Date.now() };

/** The side-effecting edges an operation uses, wired in one place. */
export interface Services {
  http: HttpClient;
  reporter: Reporter;
  serviceManager: ServiceManager;
  /** null: no [health] section, so no pre-flight and no gate. */
  health: HealthChecker | null;
  clock: Clock;
}

export function createServices(config: Pick<Config, 'source' | 'health'>, reporter: Reporter): Services {
  return {
    http: new HttpClient({
      caFile: config.source.ca,
      idleTimeoutMs: config.source.idleTimeoutMs,
      minSpeed: config.source.minSpeed,
      minSpeedTimeMs: config.source.minSpeedTimeMs,
    }),
    reporter,
    serviceManager: new Systemctl(),
    health: config.health ? httpHealthChecker(config.health) : null,
    clock: systemClock,
  };
}
