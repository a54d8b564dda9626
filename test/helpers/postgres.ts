/**
 * A real, throwaway PostgreSQL server for the database tests: its own account, data directory
 * and socket directory under the temp dir, no TCP (`listen_addresses=''`), peer authentication
 * only. PostgreSQL refuses to run as root, so the server runs as a fresh account made for it
 * (its superuser role has the same name), and every OS account a test makes reaches the server
 * as the role of its own name, the way a deployed app's account does (peer auth, no password).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandEnv } from '../../src/system/commands.ts';
import { createAccount, idsOf, removeAccount } from './accounts.ts';

export interface Postgres {
  /** The directory holding the server's Unix socket (`-k`). */
  readonly socketDir: string;
  /** The server's own account, which is also its superuser role. */
  readonly account: string;
  /** The postmaster's PID (SIGSTOP it to play a server that does not answer). */
  readonly pid: number;
  /** A libpq URL for `db` over the socket: `postgresql:///db?host=<socketDir>` (and `&user=role`). */
  url(db: string, role?: string): string;
  /** A login role named like an OS account, so that peer auth lets that account in. */
  createRole(name: string, opts?: { createdb?: boolean }): void;
  createDatabase(name: string, owner: string): void;
  /** Run `sql` with psql as the OS account `as` (default: the server's superuser); its unaligned, tuples-only output. */
  psql(sql: string, opts: { db: string; as?: string }): string;
  /** A plain-text `pg_dump` of `db` (as the superuser), for comparing contents before and after. */
  dump(db: string): string;
  /** Fast shutdown, wait for the server to exit, remove its files and its account. */
  stop(): Promise<void>;
}

const CLIENT_TOOLS = ['pg_dump', 'pg_restore', 'psql'];

/** Where initdb and postgres live: Debian's versioned directories (newest first), RHEL's, then the PATH ones. */
function serverBinDir(): string | undefined {
  const candidates: string[] = [];
  for (const [root, pattern] of [
    ['/usr/lib/postgresql', /^(\d+)$/],
    ['/usr', /^pgsql-(\d+)$/],
  ] as const) {
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {
      // not there
    }
    const versions = names.map((n) => pattern.exec(n)).filter((m): m is RegExpExecArray => m !== null);
    versions.sort((a, b) => Number(b[1]) - Number(a[1]));
    for (const m of versions) candidates.push(path.join(root, m[0], 'bin'));
  }
  candidates.push('/usr/bin', '/usr/local/bin', '/usr/local/pgsql/bin');
  return candidates.find((d) => existsSync(path.join(d, 'initdb')) && existsSync(path.join(d, 'postgres')) && existsSync(path.join(d, 'pg_isready')));
}

let availability: { ok: boolean; why?: string } | undefined;

/** Can this machine run the real-server tests? If not, why (for the skip message). */
export function postgresAvailable(): { ok: boolean; why?: string } {
  availability ??= probe();
  return availability;
}

function probe(): { ok: boolean; why?: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'needs root: the server and the app run as accounts the test creates' };
  if (!serverBinDir()) return { ok: false, why: 'no PostgreSQL server binaries (initdb, postgres); on Debian: apt-get install postgresql' };
  const missing = [...CLIENT_TOOLS, 'setpriv'].filter((t) => spawnSync(t, ['--version'], { env: commandEnv(), stdio: 'ignore' }).status !== 0);
  if (missing.length) return { ok: false, why: `${missing.join(', ')} not in ${commandEnv().PATH}; on Debian: apt-get install postgresql-client util-linux` };
  return { ok: true };
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runAs(cmd: string, args: string[], ids: { uid: number; gid: number }, opts: { input?: string; cwd: string }): Ran {
  const r = spawnSync(cmd, args, {
    uid: ids.uid,
    gid: ids.gid,
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    env: commandEnv({ LANG: 'C', LC_ALL: 'C' }),
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}

function must(what: string, r: Ran): string {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

export async function startPostgres(): Promise<Postgres> {
  const bin = serverBinDir();
  if (!bin) throw new Error(postgresAvailable().why);
  const account = createAccount('cutover-pg');
  const server = idsOf(account);
  const base = mkdtempSync(path.join(os.tmpdir(), 'cutover-pg-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const cleanup = async (): Promise<void> => {
    if (child?.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT'); // fast shutdown: roll back open transactions, disconnect, exit
      const killer = setTimeout(() => child?.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(base, { recursive: true, force: true });
    removeAccount(account);
  };
  try {
    // The base is reachable by everyone (the socket is in it); the data directory only by the server.
    chmodSync(base, 0o755);
    const data = path.join(base, 'data');
    const socketDir = path.join(base, 'run');
    mkdirSync(data, { mode: 0o700 });
    mkdirSync(socketDir, { mode: 0o755 });
    chownSync(data, server.uid, server.gid);
    chownSync(socketDir, server.uid, server.gid);
    must(
      'initdb',
      runAs(
        path.join(bin, 'initdb'),
        ['-D', data, '-U', account, '--auth-local=peer', '--auth-host=reject', '--encoding=UTF8', '--no-locale', '--no-sync', '--no-instructions'],
        server,
        { cwd: base },
      ),
    );

    const logFile = path.join(base, 'postgres.log');
    const log = openSync(logFile, 'a', 0o644);
    // setpriv switches to the server's account and asks the kernel for SIGINT (fast shutdown) if
    // this process dies without stop() (a killed test run), then execs postgres: the same PID.
    child = spawn(
      'setpriv',
      [
        `--reuid=${server.uid}`,
        `--regid=${server.gid}`,
        '--clear-groups',
        '--pdeathsig=INT',
        '--',
        path.join(bin, 'postgres'),
        ...['-D', data, '-k', socketDir, '-c', 'listen_addresses=', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'shared_buffers=16MB'],
      ],
      { cwd: base, detached: true, stdio: ['ignore', log, log], env: commandEnv({ LANG: 'C', LC_ALL: 'C' }) },
    );
    closeSync(log);
    const started = child;
    exited = new Promise((resolve) => started.once('exit', () => resolve()));
    started.unref(); // a test that forgets stop() must not hang the run; after() stops it

    const deadline = Date.now() + 60_000;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`postgres exited at start: ${readFileSync(logFile, 'utf8').trim()}`);
      const r = spawnSync(path.join(bin, 'pg_isready'), ['-q', '-h', socketDir, '-d', 'postgres', '-U', account], { env: commandEnv(), timeout: 10_000 });
      if (r.status === 0) break;
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 60 s: ${readFileSync(logFile, 'utf8').trim()}`);
      await sleep(100);
    }

    const url = (db: string, role?: string): string =>
      `postgresql:///${encodeURIComponent(db)}?host=${encodeURIComponent(socketDir)}${role ? `&user=${encodeURIComponent(role)}` : ''}`;
    const psql = (sql: string, opts: { db: string; as?: string }): string => {
      const who = opts.as ?? account;
      const args = ['-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-d', opts.db, '-f', '-'];
      const out = must(`psql as ${who} on ${opts.db}`, runAs('psql', args, who === account ? server : idsOf(who), { input: sql, cwd: '/' }));
      return out.replace(/\n$/, '');
    };
    return {
      socketDir,
      account,
      pid: started.pid as number,
      url,
      psql,
      createRole(name, opts = {}) {
        psql(`CREATE ROLE ${quoteIdent(name)} LOGIN${opts.createdb ? ' CREATEDB' : ''};`, { db: 'postgres' });
      },
      createDatabase(name, owner) {
        psql(`CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(owner)};`, { db: 'postgres' });
      },
      dump(db) {
        const out = must(`pg_dump ${db}`, runAs('pg_dump', ['-w', '-h', socketDir, '-d', db], server, { cwd: '/' }));
        // pg_dump 15.14+ frames the script in `\restrict <random key>`: not content, and different every time.
        return out
          .split('\n')
          .filter((l) => !/^\\(un)?restrict /.test(l))
          .join('\n');
      },
      stop: cleanup,
    };
  } catch (e) {
    await cleanup().catch(() => undefined);
    throw e;
  }
}
