import { spawn } from 'node:child_process';
import { commandEnv } from '../system/commands.ts';

export interface UnitState {
  unit: string;
  activeState: string;
  subState: string;
  result: string;
  mainPid: number;
  nRestarts: number;
}

export interface RestartOutcome {
  ok: boolean;
  unit: string;
  /** What systemctl or the unit's state said when it is not ok. */
  reason: string;
  state: UnitState | undefined;
}

/** The narrow interface cutover needs from a service manager. */
export interface ServiceManager {
  /** Restart one unit and wait until systemd considers it started (READY for Type=notify). */
  restart(unit: string, timeoutMs: number): Promise<RestartOutcome>;
  /** Start one unit (after a stop) and wait until systemd considers it started. */
  start(unit: string, timeoutMs: number): Promise<RestartOutcome>;
  /** Stop one unit and wait until it is stopped. */
  stop(unit: string, timeoutMs: number): Promise<RestartOutcome>;
  resetFailed(unit: string): Promise<void>;
  state(unit: string): Promise<UnitState>;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: commandEnv({ SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' }) });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: e.message, timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** systemd through `systemctl`, as root on the host. */
export class Systemctl implements ServiceManager {
  private readonly bin: string;

  constructor(bin = 'systemctl') {
    this.bin = bin;
  }

  restart(unit: string, timeoutMs: number): Promise<RestartOutcome> {
    return this.startLike('restart', unit, timeoutMs);
  }

  start(unit: string, timeoutMs: number): Promise<RestartOutcome> {
    return this.startLike('start', unit, timeoutMs);
  }

  async stop(unit: string, timeoutMs: number): Promise<RestartOutcome> {
    const r = await run(this.bin, ['stop', '--', unit], timeoutMs);
    const state = await this.state(unit).catch(() => undefined);
    if (r.timedOut) return { ok: false, unit, reason: `did not stop within ${Math.round(timeoutMs / 1000)}s`, state };
    if (r.code !== 0) return { ok: false, unit, reason: r.stderr.trim().split('\n')[0] || `systemctl exited ${r.code}`, state };
    return { ok: true, unit, reason: 'ok', state };
  }

  private async startLike(verb: 'restart' | 'start', unit: string, timeoutMs: number): Promise<RestartOutcome> {
    const r = await run(this.bin, [verb, '--', unit], timeoutMs);
    const state = await this.state(unit).catch(() => undefined);
    if (r.timedOut) {
      return { ok: false, unit, reason: `did not finish starting within ${Math.round(timeoutMs / 1000)}s`, state };
    }
    if (r.code !== 0) {
      const why = r.stderr.trim().split('\n')[0] || `systemctl exited ${r.code}`;
      return { ok: false, unit, reason: state?.result && state.result !== 'success' ? `${why} (result: ${state.result})` : why, state };
    }
    if (state && state.activeState !== 'active') {
      return { ok: false, unit, reason: `is ${state.activeState}/${state.subState} after the ${verb} (result: ${state.result})`, state };
    }
    return { ok: true, unit, reason: 'ok', state };
  }

  async resetFailed(unit: string): Promise<void> {
    await run(this.bin, ['reset-failed', '--', unit], 30_000);
  }

  async state(unit: string): Promise<UnitState> {
    const r = await run(this.bin, ['show', '--property=ActiveState,SubState,Result,MainPID,NRestarts', '--', unit], 30_000);
    if (r.code !== 0) throw new Error(r.stderr.trim() || `systemctl show exited ${r.code}`);
    const props = Object.fromEntries(
      r.stdout
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    return {
      unit,
      activeState: props.ActiveState ?? 'unknown',
      subState: props.SubState ?? 'unknown',
      result: props.Result ?? 'unknown',
      mainPid: Number(props.MainPID ?? 0),
      nRestarts: Number(props.NRestarts ?? 0),
    };
  }
}
