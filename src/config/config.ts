import { spawnSync } from 'node:child_process';
import { commandEnv } from '../system/commands.ts';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { CutoverError, errnoCode } from '../errors.ts';
import { parseDuration } from './duration.ts';
import { parseReserve, parseSize, type Reserve } from './size.ts';
import { parseWindow, type MaintenanceWindow } from './window.ts';

export interface Config {
  /** Where the config was read from. */
  file: string;
  app: string;
  root: string;
  keep: number;
  /**
   * The account the app's units run as (`user = "demo"`): `runtime/` is created owned by it.
   * Resolved to ids by loadConfig; undefined when the key is absent.
   */
  user: AppUser | undefined;
  source: {
    index: URL;
    ca: string | undefined;
    /** Overall deadline for one download (all attempts together), ms. */
    timeoutMs: number;
    /** Longest silence from the server before giving up, ms. */
    idleTimeoutMs: number;
    /** Throughput floor, bytes per second (like curl's --speed-limit). */
    minSpeed: number;
    /** How long a transfer may stay under minSpeed before it fails, ms (curl's --speed-time). */
    minSpeedTimeMs: number;
  };
  disk: DiskConfig;
  trust: {
    identity: string;
    issuer: string;
    trustedRoot: string | undefined;
    requireTlog: boolean;
    requireTimestamp: boolean;
  };
  service: {
    /** systemd units restarted in this order after a switch. Empty: no restarts. */
    units: string[];
  };
  health: HealthConfig | undefined;
  daemon: DaemonConfig;
  /** The app's database, which cutover backs up before a schema change; undefined: none. */
  database: DatabaseConfig | undefined;
  backup: BackupConfig;
  migrate: { timeoutMs: number };
}

type DatabaseConfig = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string } | { kind: 'command'; backup: string[]; restore: string[] };

interface BackupConfig {
  /** Absolute; default ROOT/backups. */
  dir: string;
  /** Backups kept besides those that protect a retained release. */
  keep: number;
  /** schema: before every schema change; always: before every update; never. */
  when: 'schema' | 'always' | 'never';
}

export interface HealthConfig {
  url: URL;
  /** Overall deadline for the gate after the restarts, ms. */
  timeoutMs: number;
  intervalMs: number;
  /** Consecutive good answers needed. */
  successes: number;
  /** The answer must report the version just installed. */
  expectVersion: boolean;
  /** Deadline for one probe, ms. */
  probeTimeoutMs: number;
}

interface AppUser {
  name: string;
  /** Filled in by loadConfig (getent); parseConfig alone leaves them undefined. */
  uid: number | undefined;
  gid: number | undefined;
}

interface DiskConfig {
  /** Space kept free on the root's filesystem. Absent: 5% or 1 GiB, whichever is smaller. */
  reserve: Reserve | undefined;
  /** Unpacked bytes allowed per downloaded byte. */
  maxRatio: number;
}

export type AutoPolicy = 'none' | 'patch' | 'minor' | 'major';

interface DaemonConfig {
  intervalMs: number;
  auto: AutoPolicy;
  window: MaintenanceWindow | undefined;
  /** manual: the daemon never installs a release that changes the database's schema. */
  migrations: 'manual' | 'auto';
}

/** Program name → default config path: invoked as `app`, read /etc/app/cutover.toml. */
function defaultConfigPath(programName: string): string {
  return `/etc/${programName}/cutover.toml`;
}

export function resolveConfigPath(programName: string, flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.CUTOVER_CONFIG ?? defaultConfigPath(programName);
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const missing = errnoCode(e) === 'ENOENT';
    throw new CutoverError(
      missing ? 'E_CONFIG_MISSING' : 'E_CONFIG',
      missing ? `no config file at ${file}` : `cannot read config ${file}: ${(e as Error).message}`,
      { hint: 'create it (see docs/configuration.md) or pass --config FILE', cause: e },
    );
  }
  const config = parseConfig(text, file);
  if (config.user) {
    const ids = lookupUser(config.user.name);
    if (!ids) {
      throw new CutoverError('E_CONFIG', `${file}: user "${config.user.name}" is not an account on this machine`, {
        hint: 'create the account the app runs as (useradd --system), or fix `user`',
        details: { key: 'user' },
      });
    }
    config.user.uid = ids.uid;
    config.user.gid = ids.gid;
  }
  return config;
}

/** uid and primary gid of an account, through NSS (`getent passwd`), or undefined when there is none. */
function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('getent', ['passwd', '--', name], { encoding: 'utf8', env: commandEnv(), timeout: 10_000 });
  if (r.status !== 0) return undefined;
  const f = r.stdout.split('\n')[0]?.split(':') ?? [];
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (f[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { uid, gid };
}

/** What an app may be called (`app`, `release pack --name`): it names files, units and accounts. */
export const APP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

type Table = Record<string, unknown>;

/** Parse and validate. Every complaint names the key and its line. */
export function parseConfig(text: string, file = '<config>'): Config {
  let doc: Table;
  try {
    doc = parse(text, { unsafeKeyBehaviour: 'throw' });
  } catch (e) {
    const line = e instanceof TomlError ? e.line : undefined;
    const first = (e as Error).message.split('\n')[0];
    throw new CutoverError('E_CONFIG', `${file}${line ? `:${line}` : ''}: invalid TOML: ${first}`, {
      hint: 'fix the syntax (see docs/configuration.md)',
      cause: e,
    });
  }
  const lines = new KeyLines(text);
  const fail = (key: string, what: string): never => {
    const line = lines.find(key);
    throw new CutoverError('E_CONFIG', `${file}${line ? `:${line}` : ''}: ${key} ${what}`, {
      hint: 'fix it (see docs/configuration.md)',
      details: { key, line },
    });
  };
  const reader = new TableReader(doc, '', fail);

  const app = reader.string('app', { required: true });
  if (!APP_NAME.test(app)) fail('app', 'must be a short name of letters, digits, ".", "_" or "-"');
  const root = reader.string('root', { required: true });
  if (!path.isAbsolute(root)) fail('root', 'must be an absolute path');
  if (path.resolve(root) === '/') fail('root', 'must not be /');
  const keep = reader.integer('keep', { default: 3, min: 0, max: 100 });
  const userName = reader.optionalString('user');
  if (userName !== undefined && !/^[a-z_][a-z0-9_.-]{0,31}\$?$/i.test(userName)) fail('user', 'must be an account name such as "demo"');

  const src = reader.table('source', { required: true });
  const indexStr = src.string('index', { required: true });
  let index: URL;
  try {
    index = new URL(indexStr);
  } catch {
    return fail('source.index', 'is not a URL');
  }
  if (index.protocol !== 'https:') fail('source.index', 'must be an https:// URL');
  const ca = src.optionalString('ca');
  if (ca !== undefined && !path.isAbsolute(ca)) fail('source.ca', 'must be an absolute path');
  const timeoutMs = src.duration('timeout', '30m');
  const idleTimeoutMs = src.duration('idle_timeout', '30s');
  const minSpeed = src.size('min_speed', '1KiB');
  const minSpeedTimeMs = src.duration('min_speed_time', '30s');
  src.done();

  const trust = reader.table('trust', { required: true });
  const identity = trust.string('identity', { required: true });
  const issuer = trust.string('issuer', { required: true });
  const trustedRoot = trust.optionalString('trusted_root');
  if (trustedRoot !== undefined && !path.isAbsolute(trustedRoot)) fail('trust.trusted_root', 'must be an absolute path');
  const requireTlog = trust.boolean('require_tlog', true);
  const requireTimestamp = trust.boolean('require_timestamp', true);
  trust.done();

  const dk = reader.table('disk', { required: false });
  const reserveText = dk.optionalString('reserve');
  let reserve: Reserve | undefined;
  if (reserveText !== undefined) {
    reserve = parseReserve(reserveText);
    if (!reserve) fail('disk.reserve', 'must be a share such as "5%" (at most 50%) or a size such as "1GiB"');
  }
  const maxRatio = dk.integer('max_ratio', { default: 100, min: 1, max: 100_000 });
  dk.done();

  const svc = reader.table('service', { required: false });
  const units = svc.stringArray('units');
  for (const u of units) {
    if (!/^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer)$/.test(u))
      fail('service.units', `has "${u}", which is not a systemd unit name (like "demo.service")`);
  }
  svc.done();

  const h = reader.table('health', { required: false });
  let health: HealthConfig | undefined;
  const healthUrl = h.optionalString('url');
  if (healthUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(healthUrl);
    } catch {
      return fail('health.url', 'is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('health.url', 'must be an http:// or https:// URL');
    health = {
      url,
      timeoutMs: h.duration('timeout', '180s'),
      intervalMs: h.duration('interval', '1s'),
      successes: h.integer('successes', { default: 3, min: 1, max: 100 }),
      expectVersion: h.boolean('expect_version', true),
      probeTimeoutMs: h.duration('probe_timeout', '5s'),
    };
  }
  h.done();
  if (units.length && !health) fail('health.url', 'is required when service.units restarts units (the health gate decides whether to roll back)');

  const d = reader.table('daemon', { required: false });
  const intervalMs = d.duration('interval', '6h');
  if (intervalMs < 10_000) fail('daemon.interval', 'must be at least 10s');
  const auto = d.optionalString('auto') ?? 'patch';
  if (!['none', 'patch', 'minor', 'major'].includes(auto)) fail('daemon.auto', 'must be one of "none", "patch", "minor", "major"');
  const windowText = d.optionalString('window');
  let window: MaintenanceWindow | undefined;
  if (windowText !== undefined) {
    window = parseWindow(windowText);
    if (!window) fail('daemon.window', 'must look like "Sun 02:00-04:00", "Mon-Fri 01:00-03:00" or "02:00-04:00"');
  }
  const migrations = d.optionalString('migrations') ?? 'manual';
  if (migrations !== 'manual' && migrations !== 'auto') fail('daemon.migrations', 'must be "manual" or "auto"');
  d.done();

  const db = reader.table('database', { required: false });
  const kind = db.optionalString('kind');
  let database: DatabaseConfig | undefined;
  if (kind === undefined && Object.keys((doc.database as Table | undefined) ?? {}).length) fail('database.kind', 'is required in [database]');
  if (kind === 'sqlite') {
    const file = db.string('path', { required: true });
    database = { kind, path: path.resolve(root, file) };
  } else if (kind === 'postgres') {
    const url = db.string('url', { required: true });
    if (!/^postgres(ql)?:\/\//.test(url)) fail('database.url', 'must be a libpq URL such as "postgresql:///demo?host=/run/postgresql"');
    database = { kind, url };
  } else if (kind === 'command') {
    const argv = (k: string): string[] => {
      const a = db.stringArray(k);
      if (!a.length) fail(`database.${k}`, 'is required for kind = "command" (a command and its arguments, with {file})');
      if (!path.isAbsolute(a[0]!)) fail(`database.${k}`, 'must start with an absolute path to the program');
      if (!a.some((x) => x.includes('{file}'))) fail(`database.${k}`, 'must pass {file} (where the backup is) to the command');
      return a;
    };
    database = { kind, backup: argv('backup'), restore: argv('restore') };
  } else if (kind !== undefined) {
    fail('database.kind', 'must be "sqlite", "postgres" or "command"');
  }
  if (kind !== 'sqlite' && db.optionalString('path') !== undefined) fail('database.path', 'is only for kind = "sqlite"');
  if (kind !== 'postgres' && db.optionalString('url') !== undefined) fail('database.url', 'is only for kind = "postgres"');
  if (kind !== 'command') {
    if (db.stringArray('backup').length) fail('database.backup', 'is only for kind = "command"');
    if (db.stringArray('restore').length) fail('database.restore', 'is only for kind = "command"');
  }
  db.done();

  const bk = reader.table('backup', { required: false });
  const backupDir = bk.optionalString('dir') ?? path.join(root, 'backups');
  if (!path.isAbsolute(backupDir)) fail('backup.dir', 'must be an absolute path');
  const backupKeep = bk.integer('keep', { default: 5, min: 0, max: 1000 });
  const when = bk.optionalString('when') ?? 'schema';
  if (when !== 'schema' && when !== 'always' && when !== 'never') fail('backup.when', 'must be "schema", "always" or "never"');
  bk.done();

  const mg = reader.table('migrate', { required: false });
  const migrateTimeoutMs = mg.duration('timeout', '30m');
  mg.done();

  reader.done();
  return {
    file,
    app,
    root: path.resolve(root),
    keep,
    user: userName === undefined ? undefined : { name: userName, uid: undefined, gid: undefined },
    source: { index, ca, timeoutMs, idleTimeoutMs, minSpeed, minSpeedTimeMs },
    disk: { reserve, maxRatio },
    trust: { identity, issuer, trustedRoot, requireTlog, requireTimestamp },
    service: { units },
    health,
    daemon: { intervalMs, auto: auto as AutoPolicy, window, migrations: migrations as 'manual' | 'auto' },
    database,
    backup: { dir: path.resolve(backupDir), keep: backupKeep, when: when as BackupConfig['when'] },
    migrate: { timeoutMs: migrateTimeoutMs },
  };
}

class TableReader {
  private readonly seen = new Set<string>();
  private readonly doc: Table;
  private readonly prefix: string;
  private readonly fail: (key: string, what: string) => never;

  constructor(doc: Table, prefix: string, fail: (key: string, what: string) => never) {
    this.doc = doc;
    this.prefix = prefix;
    this.fail = fail;
  }

  private key(k: string): string {
    return this.prefix ? `${this.prefix}.${k}` : k;
  }

  private get(k: string): unknown {
    this.seen.add(k);
    return Object.hasOwn(this.doc, k) ? this.doc[k] : undefined;
  }

  string(k: string, opts: { required: true }): string {
    const v = this.get(k);
    if (v === undefined && opts.required) return this.fail(this.key(k), 'is required');
    if (typeof v !== 'string' || v.trim() === '') return this.fail(this.key(k), 'must be a non-empty string');
    return v;
  }

  optionalString(k: string): string | undefined {
    const v = this.get(k);
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') return this.fail(this.key(k), 'must be a non-empty string');
    return v;
  }

  stringArray(k: string): string[] {
    const v = this.get(k);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) {
      return this.fail(this.key(k), 'must be a list of strings');
    }
    return v as string[];
  }

  integer(k: string, opts: { default: number; min: number; max: number }): number {
    const v = this.get(k);
    if (v === undefined) return opts.default;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < opts.min || v > opts.max) {
      return this.fail(this.key(k), `must be an integer from ${opts.min} to ${opts.max}`);
    }
    return v;
  }

  boolean(k: string, dflt: boolean): boolean {
    const v = this.get(k);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') return this.fail(this.key(k), 'must be true or false');
    return v;
  }

  duration(k: string, dflt: string): number {
    const v = this.get(k) ?? dflt;
    const ms = typeof v === 'string' ? parseDuration(v) : undefined;
    if (ms === undefined || ms <= 0) return this.fail(this.key(k), 'must be a duration such as "30s", "15m" or "6h"');
    return ms;
  }

  size(k: string, dflt: string): number {
    const v = this.get(k) ?? dflt;
    const n = typeof v === 'string' ? parseSize(v) : typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
    if (n === undefined) return this.fail(this.key(k), 'must be a size such as "1KiB", "512MiB" or a number of bytes');
    return n;
  }

  table(k: string, opts: { required: boolean }): TableReader {
    const v = this.get(k);
    if (v === undefined) {
      if (opts.required) return this.fail(this.key(k), 'is required (a [table])');
      return new TableReader({}, this.key(k), this.fail);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) {
      return this.fail(this.key(k), 'must be a [table]');
    }
    return new TableReader(v as Table, this.key(k), this.fail);
  }

  /** Unknown keys are errors: a typo must never silently weaken the policy. */
  done(): void {
    for (const k of Object.keys(this.doc)) {
      if (!this.seen.has(k)) this.fail(this.key(k), 'is not a known setting');
    }
  }
}

/** Maps dotted keys to the line that sets them, for error messages. */
class KeyLines {
  private readonly map = new Map<string, number>();

  constructor(text: string) {
    let table = '';
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      const header = /^\[\s*([A-Za-z0-9_.\-\s"]+?)\s*\]/.exec(line);
      if (header?.[1]) {
        table = header[1].replace(/["\s]/g, '');
        if (!this.map.has(table)) this.map.set(table, i + 1);
        return;
      }
      const kv = /^([A-Za-z0-9_\-."]+)\s*=/.exec(line);
      if (kv?.[1]) {
        const key = kv[1].replace(/"/g, '');
        const full = table ? `${table}.${key}` : key;
        if (!this.map.has(full)) this.map.set(full, i + 1);
      }
    });
  }

  find(key: string): number | undefined {
    return this.map.get(key);
  }
}
