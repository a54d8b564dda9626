/**
 * The system commands cutover runs (`flock`, `sync`, `systemctl`, `systemd-notify`, `getent`)
 * come from a fixed system PATH, never the caller's, and run with a minimal environment: under
 * `sudo -E` a caller's PATH, LD_PRELOAD or DBUS address must not choose what root executes.
 * Spawning a bare name with `env: commandEnv()` does both: Node looks the command up in the
 * PATH of the environment it is given.
 */
/** Where system commands are looked up, in this order. Root-owned on every supported system. */
export const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/** The whole environment a system command gets (and where it is looked up): the fixed PATH, the C locale, plus `extra`. */
export function commandEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: SYSTEM_PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * Those of UNSAFE_UNDER_ROOT that take effect while the process starts, before any script runs:
 * unsetting them later changes nothing for this process (run.ts re-runs the single executable).
 */
const STARTUP_NAMES = [
  'NODE_EXTRA_CA_CERTS',
  'NODE_ICU_DATA',
  'NODE_V8_COVERAGE',
  'NODE_USE_ENV_PROXY',
  'NODE_USE_SYSTEM_CA',
  'OPENSSL_CONF',
  'OPENSSL_MODULES',
  'OPENSSL_ENGINES',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'LD_AUDIT',
] as const;
export const READ_AT_STARTUP: ReadonlySet<string> = new Set(STARTUP_NAMES);

/**
 * Variables that change what a Node process loads, trusts or executes. The launcher unsets them
 * before starting Node as root; `scrubEnvironment` removes them again inside the process (for
 * runs that did not come through the launcher, and for children), where they still matter at
 * runtime (NODE_TLS_REJECT_UNAUTHORIZED is read on each TLS connection).
 */
export const UNSAFE_UNDER_ROOT = [
  'NODE_OPTIONS',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'NODE_PATH',
  'NODE_REPL_EXTERNAL_MODULE',
  ...STARTUP_NAMES,
  'CUTOVER_NODE',
] as const;

/** Under euid 0: drop UNSAFE_UNDER_ROOT and pin PATH. Returns the names that were removed. */
export function scrubEnvironment(env: NodeJS.ProcessEnv = process.env, euid = process.geteuid?.()): string[] {
  if (euid !== 0) return [];
  const removed: string[] = [];
  for (const name of UNSAFE_UNDER_ROOT) {
    if (env[name] !== undefined) {
      removed.push(name);
      delete env[name];
    }
  }
  env.PATH = SYSTEM_PATH;
  return removed;
}
