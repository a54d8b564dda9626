import type { Config } from '../config/config.ts';
import { HttpClient } from '../download/http.ts';
import type { Reporter } from '../report.ts';
import { Systemctl, type ServiceManager } from '../service/systemd.ts';

/** The side-effecting edges an operation uses, wired in one place. */
export interface Services {
  http: HttpClient;
  reporter: Reporter;
  serviceManager: ServiceManager;
}

export function createServices(config: Config, reporter: Reporter): Services {
  return {
    http: new HttpClient({
      caFile: config.source.ca,
      idleTimeoutMs: config.source.idleTimeoutMs,
      minSpeed: config.source.minSpeed,
      minSpeedTimeMs: config.source.minSpeedTimeMs,
    }),
    reporter,
    serviceManager: new Systemctl(),
  };
}
