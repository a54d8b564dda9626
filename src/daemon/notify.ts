import { spawn } from 'node:child_process';
import { commandEnv } from '../system/commands.ts';
import { escapeControls } from '../text.ts';

/** The systemd notify protocol (sd_notify), as far as cutover speaks it. */
export interface Notifier {
  readonly enabled: boolean;
  /** Watchdog interval requested by the unit (WatchdogSec=), ms; undefined when not set. */
  readonly watchdogMs: number | undefined;
  notify(fields: Record<string, string>): Promise<void>;
}

/**
 * Node has no AF_UNIX datagram sockets, so the messages go through systemd's own
 * `systemd-notify`, with `--pid` naming this process: systemd then attributes them to the
 * service's main process (needs root, which the daemon has). Messages are sent one at a time, in order.
 */
export class SystemdNotifier implements Notifier {
  readonly enabled: boolean;
  readonly watchdogMs: number | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly bin: string;

  private readonly socket: string | undefined;

  constructor(env: NodeJS.ProcessEnv = process.env, bin = 'systemd-notify') {
    this.bin = bin;
    this.socket = env.NOTIFY_SOCKET;
    this.enabled = !!env.NOTIFY_SOCKET;
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
    this.watchdogMs = this.enabled && forUs && Number.isFinite(usec) && usec > 0 ? Math.floor(usec / 1000) : undefined;
  }

  notify(fields: Record<string, string>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const args = [`--pid=${process.pid}`, ...Object.entries(fields).map(([k, v]) => `${k}=${escapeControls(v)}`)];
    this.queue = this.queue.then(
      () =>
        new Promise<void>((resolve) => {
          const child = spawn(this.bin, args, { stdio: 'ignore', env: commandEnv({ NOTIFY_SOCKET: this.socket }) });
          child.on('error', () => resolve());
          child.on('close', () => resolve());
        }),
    );
    return this.queue;
  }
}
