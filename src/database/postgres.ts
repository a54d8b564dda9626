/**
 * PostgreSQL through the system's own client tools (pg_dump, pg_restore, psql from SYSTEM_PATH,
 * with commandEnv() and the few libpq variables below): no driver library, no shell, argv only.
 *
 * Who connects: the tools run as the app's account (`user`, through spawn's uid/gid) so that the
 * database sees the app's own credentials (peer auth on the socket, or the URL's password); as
 * root only when no user is configured. Root keeps the files, which the app's account cannot
 * open: a backup is created by root 0600 and pg_dump's stdout is streamed into it; check and
 * restore give pg_restore the file opened by root as its stdin. A password in the URL never
 * reaches argv (`ps` shows argv to everyone): it is cut out of the URL and passed as PGPASSWORD.
 *
 * Restore is exact and all-or-nothing. `pg_restore --clean` alone drops only what the backup
 * holds: a table a migration added survives, and a foreign key a migration added onto a restored
 * table makes the restore fail. So the archive is turned into SQL (`pg_restore --clean
 * --if-exists --no-owner --single-transaction --file=-`, no connection) and fed to psql
 * (ON_ERROR_STOP) after a prelude that, in the same transaction, drops everything the app's role
 * owns in the database (DROP OWNED BY CURRENT_USER; see restorePrelude for when not). psql's
 * input is only ended once pg_restore exited 0; otherwise psql is killed before its input ends
 * and the transaction rolls back. `--no-owner`: the objects are recreated by, so owned by, the app's
 * role, which is who owned them (the app's role owns its database and created its objects
 * through its migrations); no superuser is needed, and the app can read, write and alter them
 * afterwards. What the app's role does not own (objects of other roles, an extension a superuser
 * installed) cannot be restored by it: that restore fails and changes nothing.
 *
 * Timeouts (all overridable): libpq gives up connecting after 30 s (unless the URL says
 * connect_timeout); a backup waits at most 2 min for a table lock (pg_dump --lock-wait-timeout),
 * and so does a restore for the locks it needs (lock_timeout while dropping); single queries
 * are stopped after 2 min; a backup, restore, check or copy after 6 hours. A hung server thus
 * fails the operation instead of holding root (and the stopped units) forever.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, open, rm, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { CutoverError, errnoCode, type ErrorCode } from '../errors.ts';
import { commandEnv } from '../system/commands.ts';
import { untrusted } from '../text.ts';
import type { DatabaseDriver, RehearsalSupport, RunUser, ScratchCopy } from './driver.ts';

export interface PostgresTimeouts {
  /** libpq's connect_timeout (PGCONNECT_TIMEOUT), in seconds. */
  connectSeconds: number;
  /** How long a backup or restore waits for a lock before it fails. */
  lockMs: number;
  /** One query (exists, size, create or drop the scratch database). */
  queryMs: number;
  /** A whole backup, check, restore or scratch copy. */
  transferMs: number;
}

const DEFAULT_TIMEOUTS: PostgresTimeouts = { connectSeconds: 30, lockMs: 120_000, queryMs: 120_000, transferMs: 6 * 3600_000 };

/** What the tools get of a configured URL: the URL without its password, and the password. */
export interface DatabaseUrl {
  url: string;
  password: string | undefined;
}

const URL_SHAPE = /^(postgres(?:ql)?:\/\/)([^/?]*)([^?]*)(\?.*)?$/i;

function urlError(why: string): CutoverError {
  return new CutoverError('E_CONFIG', `the database URL ${why}`, {
    hint: 'write it as postgresql://[user[:password]@][host][:port]/dbname[?param=value], percent-encoding special characters',
  });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw urlError('has a malformed percent-escape');
  }
}

/** Split a libpq URL into the password-free URL the tools see and the password (userinfo or `?password=`). */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  const m = URL_SHAPE.exec(url);
  if (!m) throw urlError('is not a postgresql:// URL');
  const [, scheme = '', authority = '', dbPath = '', query = ''] = m;
  let password: string | undefined;
  let auth = authority;
  const at = authority.lastIndexOf('@');
  const colon = at < 0 ? -1 : authority.slice(0, at).indexOf(':');
  if (colon >= 0) {
    password = decode(authority.slice(colon + 1, at));
    auth = authority.slice(0, colon) + authority.slice(at);
  }
  const kept: string[] = [];
  for (const param of query ? query.slice(1).split('&') : []) {
    const eq = param.indexOf('=');
    if (decode(eq < 0 ? param : param.slice(0, eq)) === 'password') password = decode(eq < 0 ? '' : param.slice(eq + 1));
    else if (param) kept.push(param);
  }
  return { url: `${scheme}${auth}${dbPath}${kept.length ? `?${kept.join('&')}` : ''}`, password: password || undefined };
}

/** The same URL naming another database (its path replaced, any `dbname=` parameter dropped). */
function withDatabase(url: string, db: string): string {
  const [, scheme = '', authority = '', , query = ''] = URL_SHAPE.exec(url) ?? [];
  const kept = (query ? query.slice(1).split('&') : []).filter((p) => p && decode(p.split('=')[0] ?? '') !== 'dbname');
  return `${scheme}${authority}/${encodeURIComponent(db)}${kept.length ? `?${kept.join('&')}` : ''}`;
}

export interface Invocation {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * How a tool is run against the database: its argv ends with `--no-password` (never prompt) and
 * the password-free URL; the password, if any, is in the environment only.
 */
export function toolInvocation(db: DatabaseUrl, cmd: string, args: string[], connectSeconds = DEFAULT_TIMEOUTS.connectSeconds): Invocation {
  return {
    cmd,
    args: [...args, '--no-password', `--dbname=${db.url}`],
    env: commandEnv({ PGPASSWORD: db.password, PGCONNECT_TIMEOUT: String(connectSeconds), PGAPPNAME: 'cutover' }),
  };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** The tool could not be started (not installed, cannot switch user). */
  spawnError: Error | undefined;
}

interface Running {
  child: ChildProcess;
  exit: Promise<Exit>;
}

const STDERR_KEEP = 16 * 1024;

/** Start a tool (as `user` if given, in `/`), killed when `signal` aborts (SIGTERM, then SIGKILL after 5 s). */
function launch(inv: Invocation, user: RunUser | undefined, stdio: StdioOptions, signal: AbortSignal): Running {
  const child = spawn(inv.cmd, inv.args, { env: inv.env, cwd: '/', stdio, ...(user && user.uid !== 0 ? { uid: user.uid, gid: user.gid } : {}) });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_KEEP)));
  const kill = (): void => {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  };
  if (signal.aborted) kill();
  else signal.addEventListener('abort', kill, { once: true });
  let spawnError: Error | undefined;
  const exit = new Promise<Exit>((resolve) => {
    child.on('error', (e) => (spawnError ??= e));
    child.on('close', (code, sig) => {
      signal.removeEventListener('abort', kill);
      resolve({ code, signal: sig, stderr, spawnError });
    });
  });
  return { child, exit };
}

/** The line of a tool's stderr that says what went wrong (its last error line, else its last line), safe to print. */
function lastError(exit: Exit): string {
  if (exit.spawnError) return untrusted(exit.spawnError.message);
  const lines = exit.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const err = lines.findLast((l) => /\b(ERROR|FATAL|PANIC):|\berror:/.test(l)) ?? lines.at(-1);
  return err ? untrusted(err.replace(/\s+/g, ' ')) : exit.signal ? `killed by ${exit.signal}` : `exited ${exit.code}`;
}

function notInstalled(exit: Exit): boolean {
  return errnoCode(exit.spawnError) === 'ENOENT';
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  for (let off = 0; off < chunk.length;) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
}

function duration(ms: number): string {
  return ms >= 3600_000 ? `${Math.round(ms / 360_000) / 10} h` : ms >= 60_000 ? `${Math.round(ms / 6000) / 10} min` : `${Math.round(ms / 100) / 10} s`;
}

/** NAMEDATALEN - 1: longer identifiers are cut by the server. Cut by bytes, on a character boundary. */
function scratchName(live: string): string {
  const suffix = `_cutover_rehearsal_${randomBytes(4).toString('hex')}`;
  let base = live;
  while (Buffer.byteLength(base + suffix) > 63) base = Array.from(base).slice(0, -1).join('');
  return base + suffix;
}

/**
 * Creates the scratch database like the live one (encoding, locale, locale provider), from
 * template0 so that nothing of template1 gets in the way of the copy. psql quotes the name
 * (`:'scratch'` in format's %I) and runs the statement with \gexec, outside a transaction.
 */
const CREATE_SCRATCH = `SELECT format('CREATE DATABASE %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', :'scratch',
         pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype)
    || CASE j->>'datlocprovider'
         WHEN 'i' THEN format(' LOCALE_PROVIDER icu ICU_LOCALE %L', coalesce(j->>'datlocale', j->>'daticulocale'))
         WHEN 'b' THEN format(' LOCALE_PROVIDER builtin BUILTIN_LOCALE %L', j->>'datlocale')
         ELSE '' END
  FROM pg_catalog.pg_database d, pg_catalog.to_jsonb(d) j
 WHERE d.datname = pg_catalog.current_database() \\gexec
`;

/**
 * Before the restore script, in its transaction: drop what the app's role owns in this database,
 * so that what the backup lacks goes too. Not for a superuser (it owns the system's objects), nor
 * for a role that holds privileges on shared objects (another database, a tablespace, a
 * parameter), which DROP OWNED would revoke cluster-wide and the backup cannot give back: those
 * restores are `--clean` only, which replaces what the backup holds and leaves what it lacks; they
 * lock the tables first, so that a session in the way fails them after lock_timeout there too.
 */
function restorePrelude(lockMs: number): string {
  return `SET client_min_messages = error;
BEGIN;
SET lock_timeout = ${Math.max(1, Math.round(lockMs))};
DO $cutover$ DECLARE rel record; BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_shdepend s
                      WHERE s.dbid = 0 AND s.deptype = 'a' AND s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
                        AND s.refobjid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)) THEN
    DROP OWNED BY CURRENT_USER;
  ELSE
    -- What --clean drops: lock it now, under lock_timeout (the script sets lock_timeout to 0).
    FOR rel IN SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
                  AND pg_catalog.pg_has_role(c.relowner, 'USAGE') LOOP
      EXECUTE pg_catalog.format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', rel.nspname, rel.relname);
    END LOOP;
  END IF;
END $cutover$;
`;
}

export function postgresDriver(opts: { url: string; user: RunUser | undefined; timeouts?: Partial<PostgresTimeouts> }): DatabaseDriver & RehearsalSupport {
  const db = parseDatabaseUrl(opts.url);
  const t: PostgresTimeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const user = opts.user;
  const as = user ? `as ${user.name}` : 'as root';
  const describe = db.url;
  const tool = (target: DatabaseUrl, cmd: string, args: string[]): Invocation => toolInvocation(target, cmd, args, t.connectSeconds);
  const offline = (cmd: string, args: string[]): Invocation => ({ cmd, args, env: commandEnv() });

  const fail = (code: ErrorCode, message: string, hint: string, cause?: unknown): CutoverError =>
    new CutoverError(code, message, { hint, cause, details: { database: describe } });
  const toolHint = (exit: Exit, otherwise: string): string =>
    notInstalled(exit) ? 'install the PostgreSQL client tools (Debian: apt-get install postgresql-client), as new as the server' : otherwise;
  const reachHint = `check the database URL and that the server is up and lets the ${user ? `${user.name} account` : 'root account'} in`;

  /** psql with `sql` on stdin (so psql variables and \\gexec work); its unaligned, tuples-only output. */
  const psql = async (target: DatabaseUrl, sql: string, vars: Record<string, string> = {}): Promise<Exit & { stdout: string }> => {
    const signal = AbortSignal.timeout(t.queryMs);
    const varArgs = Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`]);
    const run = launch(tool(target, 'psql', ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', ...varArgs, '--file=-']), user, ['pipe', 'pipe', 'pipe'], signal);
    let stdout = '';
    run.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    run.child.stdin?.on('error', () => undefined); // psql that failed to connect stops reading; its stderr says why
    run.child.stdin?.end(sql);
    const exit = await run.exit;
    if (signal.aborted) return { ...exit, code: exit.code ?? -1, stderr: `${exit.stderr}\nerror: no answer within ${duration(t.queryMs)}`, stdout };
    return { ...exit, stdout };
  };
  const query = async (sql: string, what: string): Promise<string> => {
    const r = await psql(db, sql);
    if (r.code !== 0) throw fail('E_BACKUP_FAILED', `cannot ${what} ${describe} ${as}: ${lastError(r)}`, toolHint(r, reachHint));
    return r.stdout.trim();
  };

  /** pg_dump of the live database, custom format, to its stdout. Only reads; waits for locks at most lockMs. */
  const dumpTool = (signal: AbortSignal): Running =>
    launch(tool(db, 'pg_dump', ['--format=custom', `--lock-wait-timeout=${Math.max(1, Math.round(t.lockMs))}`]), user, ['ignore', 'pipe', 'pipe'], signal);

  const stopped = (caller: AbortSignal | undefined, ms: number): string =>
    caller?.aborted ? 'it was interrupted' : `it did not finish within ${duration(ms)}`;

  return {
    kind: 'postgres',
    describe,
    env: { DATABASE_URL: opts.url },
    extension: '.dump',
    manualRestore: (file) =>
      `stop the units, then: pg_restore --clean --if-exists --no-owner --file=- ${file} | ${user ? `runuser -u ${user.name} -- ` : ''}psql -X -v ON_ERROR_STOP=1 --single-transaction --dbname='${describe}' (tables added since the backup stay: drop them first)`,

    async exists() {
      const r = await psql(db, 'select 1');
      if (r.code === 0) return true;
      // The server's words (in its lc_messages): anything not recognised as "no such database" is a failure, never a "nothing to back up".
      if (!r.spawnError && /FATAL:\s+database ".*" does not exist/.test(r.stderr)) return false;
      throw fail('E_BACKUP_FAILED', `cannot reach the database ${describe} ${as}: ${lastError(r)}`, toolHint(r, reachHint));
    },

    async estimateBytes() {
      const out = await query('select pg_catalog.pg_database_size(pg_catalog.current_database())', 'measure');
      const n = Number(out);
      if (!Number.isSafeInteger(n) || n < 0) throw fail('E_BACKUP_FAILED', `cannot measure ${describe}: the server answered ${untrusted(out)}`, reachHint);
      return n;
    },

    async backup(file, signal) {
      const deadline = AbortSignal.timeout(t.transferMs);
      const sig = AbortSignal.any([signal, deadline]);
      let fh: FileHandle;
      try {
        fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      } catch (e) {
        throw fail('E_BACKUP_FAILED', `cannot create the backup file ${file}: ${(e as Error).message}`, 'check the backup directory and retry', e);
      }
      let closed = false;
      try {
        const dump = dumpTool(sig);
        // Backpressure: the next chunk is read once the last one is written. A failed write stops pg_dump.
        const copying = pipeline(dump.child.stdout!, async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) await writeAll(fh, chunk);
        }).then(
          () => undefined,
          (e: unknown) => {
            dump.child.kill('SIGTERM');
            return e instanceof Error ? e : new Error(String(e));
          },
        );
        const [exit, writeError] = await Promise.all([dump.exit, copying]);
        if (writeError && ['ENOSPC', 'EDQUOT', 'EFBIG'].includes(errnoCode(writeError) ?? '')) throw writeError; // what stopped pg_dump
        if (sig.aborted) {
          throw fail('E_BACKUP_FAILED', `the backup of ${describe} was stopped: ${stopped(signal, t.transferMs)}`, 'retry when the database answers');
        }
        if (exit.code !== 0) {
          const why = lastError(exit);
          throw fail(
            'E_BACKUP_FAILED',
            `pg_dump of ${describe} ${as} failed: ${why}`,
            // pg_dump waits for its table locks under a statement_timeout of --lock-wait-timeout.
            /canceling statement due to (statement|lock) timeout/.test(why)
              ? `another session holds a lock on a table (a migration or ALTER still running?): see pg_stat_activity, then retry`
              : toolHint(exit, `${reachHint}, with a pg_dump as new as the server, then retry`),
          );
        }
        if (writeError) throw writeError;
        await fh.sync();
        closed = true;
        await fh.close();
      } catch (e) {
        if (!closed) await fh.close().catch(() => undefined);
        await rm(file, { force: true });
        if (e instanceof CutoverError) throw e;
        if (['ENOSPC', 'EDQUOT', 'EFBIG'].includes(errnoCode(e) ?? '')) {
          throw fail(
            'E_BACKUP_FAILED',
            `no space left writing the backup ${file} of ${describe}`,
            'free disk space on the filesystem holding the backups and retry',
            e,
          );
        }
        throw fail('E_BACKUP_FAILED', `cannot write the backup ${file}: ${(e as Error).message}`, 'check the backup directory and retry', e);
      }
    },

    /**
     * Readable means: pg_restore parses the archive's header and table of contents (`--list`,
     * whose header counts the entries: at least 1, since even an empty database's dump holds its
     * ENCODING, STDSTRINGS and SEARCHPATH entries, which --list does not print), and then reads
     * and decompresses every data block to the end (`--file=/dev/null`), which a truncated or
     * garbled file fails even where --list alone, reading only the table of contents, would not.
     * No connection; the file is opened by root and given as stdin.
     */
    async check(file) {
      const signal = AbortSignal.timeout(t.transferMs);
      const corrupt = (why: string): CutoverError =>
        fail('E_BACKUP_CORRUPT', `the backup ${file} does not read back as a pg_dump archive: ${why}`, 'do not restore it; use another backup from `backups`');
      const pass = async (args: string[]): Promise<Exit & { stdout: string }> => {
        let fh: FileHandle;
        try {
          fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
        } catch (e) {
          throw corrupt((e as Error).message);
        }
        try {
          const run = launch(offline('pg_restore', args), user, [fh.fd, 'pipe', 'pipe'], signal);
          let stdout = ''; // the head: --list prints its header first, then one line per entry
          run.child.stdout?.on('data', (d: Buffer) => {
            if (stdout.length < 64 * 1024) stdout += d.toString();
          });
          const exit = await run.exit;
          if (exit.spawnError) {
            throw fail('E_BACKUP_FAILED', `cannot check the backup ${file}: ${lastError(exit)}`, toolHint(exit, 'check the PostgreSQL client tools'));
          }
          if (signal.aborted) throw corrupt(stopped(undefined, t.transferMs));
          if (exit.code !== 0) throw corrupt(lastError(exit));
          return { ...exit, stdout };
        } finally {
          await fh.close();
        }
      };
      const list = await pass(['--list']);
      const entries = /^;\s+TOC Entries: (\d+)$/m.exec(list.stdout);
      if (!entries || Number(entries[1]) < 1) throw corrupt('its table of contents is empty');
      await pass(['--file=/dev/null']);
    },

    async restore(file) {
      const signal = AbortSignal.timeout(t.transferMs);
      const failed = (why: string, hint: string): CutoverError =>
        fail('E_BACKUP_FAILED', `restoring ${describe} from ${file} ${as} failed, the database is unchanged (the restore is one transaction): ${why}`, hint);
      let fh: FileHandle;
      try {
        fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (e) {
        throw failed(`cannot open the backup: ${(e as Error).message}`, 'restore another backup from `backups`');
      }
      try {
        const script = launch(
          offline('pg_restore', ['--clean', '--if-exists', '--no-owner', '--single-transaction', '--file=-']),
          user,
          [fh.fd, 'pipe', 'pipe'],
          signal,
        );
        const apply = launch(tool(db, 'psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--file=-']), user, ['pipe', 'ignore', 'pipe'], signal);
        let scriptFailed = false;
        // psql's input ends (and the script's final COMMIT can run) only after pg_restore exited 0;
        // otherwise psql is killed first, with its transaction open: the server rolls it back.
        const feeding = pipeline(async function* () {
          yield restorePrelude(t.lockMs);
          for await (const chunk of script.child.stdout! as AsyncIterable<Buffer>) yield chunk;
          if ((await script.exit).code !== 0) {
            scriptFailed = true;
            apply.child.kill('SIGKILL');
            throw new Error('pg_restore failed');
          }
        }, apply.child.stdin!).catch(() => {
          apply.child.kill('SIGKILL');
          script.child.kill('SIGTERM');
        });
        const [s, a] = await Promise.all([script.exit, apply.exit, feeding]);
        if (s.code === 0 && a.code === 0) return; // psql exits 0 only after the COMMIT succeeded
        if (signal.aborted) throw failed(stopped(undefined, t.transferMs), 'find out why the server is so slow (locks, load), then retry');
        if (scriptFailed || s.spawnError) {
          throw failed(`pg_restore cannot read the backup: ${lastError(s)}`, toolHint(s, 'restore another backup from `backups`'));
        }
        const why = lastError(a);
        throw failed(
          why,
          /lock timeout/.test(why)
            ? 'another session holds locks in the database: stop what still uses it (see pg_stat_activity), then retry'
            : toolHint(a, `${reachHint}; the app's role must own everything in its database`),
        );
      } finally {
        await fh.close();
      }
    },

    async scratchCopy(_dir, signal) {
      const live = await query('select pg_catalog.current_database()', 'query');
      const name = scratchName(live);
      const scratchConfigured = withDatabase(opts.url, name);
      const scratch = parseDatabaseUrl(scratchConfigured);
      const drop = async (): Promise<void> => {
        try {
          const r = await psql(db, 'DROP DATABASE IF EXISTS :"scratch" WITH (FORCE)', { scratch: name });
          if (r.code !== 0) await psql(db, 'DROP DATABASE IF EXISTS :"scratch"', { scratch: name }); // before PostgreSQL 13
        } catch {
          // never throws: a scratch database left behind is named and harmless
        }
      };

      const created = await psql(db, CREATE_SCRATCH, { scratch: name });
      if (created.code !== 0) {
        const why = lastError(created);
        throw fail(
          'E_BACKUP_FAILED',
          `cannot create the scratch database ${name} for the rehearsal ${as}: ${why}`,
          /permission denied to create database/.test(why)
            ? `--rehearse copies the database, so the app's role needs CREATEDB (ALTER ROLE … CREATEDB), or leave out --rehearse`
            : toolHint(created, reachHint),
        );
      }
      const sig = AbortSignal.any([signal, AbortSignal.timeout(t.transferMs)]);
      try {
        const dump = dumpTool(sig);
        const load = launch(tool(scratch, 'pg_restore', ['--no-owner', '--single-transaction', '--exit-on-error']), user, ['pipe', 'ignore', 'pipe'], sig);
        const copying = pipeline(dump.child.stdout!, load.child.stdin!).catch(() => {
          dump.child.kill('SIGTERM');
          load.child.kill('SIGTERM');
        });
        const [d, l] = await Promise.all([dump.exit, load.exit, copying]);
        if (sig.aborted) throw fail('E_BACKUP_FAILED', `copying ${describe} into ${name} was stopped: ${stopped(signal, t.transferMs)}`, 'retry the rehearsal');
        if (d.code !== 0) throw fail('E_BACKUP_FAILED', `pg_dump of ${describe} ${as} failed: ${lastError(d)}`, toolHint(d, reachHint));
        if (l.code !== 0) throw fail('E_BACKUP_FAILED', `cannot load the copy into ${name} ${as}: ${lastError(l)}`, toolHint(l, reachHint));
      } catch (e) {
        await drop();
        throw e;
      }
      const copy: ScratchCopy = { env: { DATABASE_URL: scratchConfigured }, drop };
      return copy;
    },
  };
}
