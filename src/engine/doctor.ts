/**
 * `doctor [--fix]`: checks an install and explains what it finds, each finding a code, a path
 * and a message. Plain `doctor` only reads; `--fix` takes the lock and repairs what is safe to
 * repair (leftovers, loose modes on cutover's own files, an interrupted operation settled the
 * way the next command would), and never deletes a release or a backup.
 */
import { chmodSync, lstatSync, readdirSync, rmSync, statSync, type Stats } from 'node:fs';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { CURRENT_TMP_PREFIX, layoutOf, releaseDir, type Layout } from '../layout/paths.ts';
import { listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { checkTrustedDir, checkTrustedFile, emptyPrivateDir } from '../layout/trusted-path.ts';
import { checkManifest, readReleaseManifest } from '../release/manifest.ts';
import { acquireLock, lockHolder } from '../state/lock.ts';
import { readState } from '../state/state.ts';
import { reserveBytes } from './disk.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';

interface Finding {
  code: string;
  severity: 'error' | 'warning';
  path: string;
  message: string;
  fixable: boolean;
  /** Set by --fix when it repaired this. */
  fixed?: boolean;
}

const DAY = 86_400_000;
const OLD_ROOT_DAYS = 180;

function lst(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

interface Check {
  finding: Finding;
  fix?: () => void | Promise<void>;
}

async function collect(config: Config, services: Services, layout: Layout, now: number): Promise<Check[]> {
  const out: Check[] = [];
  const error = (code: string, p: string, message: string, fix?: () => void | Promise<void>): void => {
    out.push({ finding: { code, severity: 'error', path: p, message, fixable: !!fix }, ...(fix ? { fix } : {}) });
  };
  const warn = (code: string, p: string, message: string, fix?: () => void | Promise<void>): void => {
    out.push({ finding: { code, severity: 'warning', path: p, message, fixable: !!fix }, ...(fix ? { fix } : {}) });
  };
  const trusted = (p: string, what: string, file = false): void => {
    try {
      if (file) checkTrustedFile(p, { what });
      else checkTrustedDir(p, { what });
    } catch (e) {
      const err = e as CutoverError;
      const fixable = file ? false : (lst(p)?.uid ?? 1) === 0;
      error(err.code ?? 'E_UNSAFE_PATH', p, err.message, fixable ? () => chmodSync(p, lst(p)!.mode & 0o7777 & ~0o022) : undefined);
    }
  };

  trusted(path.resolve(config.file), 'config file', true);
  if (!lst(layout.root)) {
    error('E_NOT_INSTALLED', layout.root, 'the install root does not exist; run `update` to install a release');
    return out;
  }
  trusted(layout.root, 'install root');
  for (const d of [layout.state, layout.releases]) if (lst(d)) trusted(d, 'cutover directory');

  // current
  let current: string | null = null;
  try {
    current = await readCurrent(layout);
    if (current === null) warn('W_NO_CURRENT', layout.current, 'nothing is current yet; `update` installs the first release');
  } catch (e) {
    error((e as CutoverError).code ?? 'E_LAYOUT', layout.current, (e as Error).message);
  }
  if (current !== null) {
    try {
      checkManifest(await readReleaseManifest(releaseDir(layout, current)), { name: config.app, version: current });
    } catch (e) {
      error('E_RELEASE_DAMAGED', releaseDir(layout, current), `current release v${current} is not complete: ${(e as Error).message}`);
    }
  }
  // every release is root's and not writable by others
  for (const v of await listInstalled(layout).catch(() => [])) {
    const dir = releaseDir(layout, v);
    const st = lst(dir);
    if (st && st.uid !== 0) error('E_UNSAFE_PATH', dir, `release v${v} is owned by uid ${st.uid}, not root: its owner could change what root runs`);
    else if (st && st.mode & 0o022)
      error('E_UNSAFE_PATH', dir, `release v${v} is writable by group or others (mode 0${(st.mode & 0o7777).toString(8)})`, () =>
        chmodSync(dir, st.mode & 0o7755),
      );
  }
  // leftovers of interrupted runs
  for (const n of readdirSync(layout.root)) {
    if (n.startsWith(CURRENT_TMP_PREFIX))
      warn('W_LEFTOVER', path.join(layout.root, n), 'a temporary link an interrupted switch left', () => removeLink(path.join(layout.root, n)));
  }
  for (const [dir, what] of [
    [layout.staging, 'staging an interrupted download left'],
    [layout.trash, 'trash an interrupted removal left'],
  ] as const) {
    const names = lst(dir)?.isDirectory() ? readdirSync(dir) : [];
    if (names.length) warn('W_LEFTOVER', dir, `${names.length} entr${names.length === 1 ? 'y' : 'ies'} of ${what}`, () => void emptyPrivateDir(dir));
  }
  const state = await readState(layout).catch((e: unknown) => {
    error('E_LAYOUT', layout.stateFile, (e as Error).message);
    return undefined;
  });
  if (state?.journal) {
    const j = state.journal;
    error(
      'E_INTERRUPTED',
      layout.stateFile,
      `an ${j.op}${j.to ? ` to v${j.to}` : ''} (pid ${j.pid}) was interrupted; the next update, rollback or gc settles it`,
      async () => {
        await recover(config, services, layout);
      },
    );
  }
  // the lock
  const lockSt = lst(layout.lock);
  if (lockSt && (lockSt.mode & 0o077) !== 0)
    warn('W_LOCK_MODE', layout.lock, `the lock is mode 0${(lockSt.mode & 0o7777).toString(8)}, not 0600; the next operation replaces it`);
  const holder = lockHolder(layout.lock);
  if (holder) warn('W_LOCKED', layout.lock, `held by ${holder}`);
  // runtime/ for the app's user
  const rt = lst(layout.runtime);
  if (config.user?.uid !== undefined && rt && (rt.uid !== config.user.uid || !(rt.mode & 0o200))) {
    warn(
      'W_RUNTIME_OWNER',
      layout.runtime,
      `runtime/ is owned by uid ${rt.uid} (mode 0${(rt.mode & 0o7777).toString(8)}), not by ${config.user.name}, which may not be able to write it`,
    );
  }
  // free space
  const fs = await statfs(layout.root);
  const reserve = reserveBytes(config.disk.reserve, fs.blocks * fs.bsize);
  if (fs.bavail * fs.bsize < reserve)
    error('E_NO_SPACE', layout.root, `only ${fs.bavail * fs.bsize} bytes free, under the ${reserve}-byte reserve; \`gc\` removes old releases`);
  // health
  if (services.health && current !== null) {
    const g = await services.health.gate(current, { signal: AbortSignal.timeout(30_000), quick: true }).catch(() => undefined);
    if (!g?.healthy) error('E_UNHEALTHY', services.health.url, `v${current} does not answer healthy: ${g?.last?.reason ?? 'no answer'}`);
  }
  for (const unit of config.service.units) {
    const s = await services.serviceManager.state(unit).catch(() => undefined);
    if (!s) warn('W_UNIT_UNKNOWN', unit, 'systemd could not be asked about this unit');
    else if (s.activeState === 'failed') error('E_UNHEALTHY', unit, `the unit has failed (result: ${s.result})`);
  }
  // the trusted root's age
  const rootFile = config.trust.trustedRoot ?? path.join(layout.tufCache, 'trusted_root.json');
  const rootSt = statOrUndefined(rootFile);
  if (rootSt && now - rootSt.mtimeMs > OLD_ROOT_DAYS * DAY) {
    warn(
      'W_TRUST_ROOT_OLD',
      rootFile,
      `the Sigstore trusted root is ${Math.floor((now - rootSt.mtimeMs) / DAY)} days old; ${config.trust.trustedRoot ? 'refresh trust.trusted_root' : 'cutover refreshes it through TUF on the next update'}`,
    );
  }
  return out;
}

function statOrUndefined(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

/** A leftover temporary link: unlinked as what it is, never followed. */
function removeLink(p: string): void {
  if (lst(p)?.isSymbolicLink()) rmSync(p, { force: true });
}

export interface DoctorResult {
  ok: boolean;
  findings: Finding[];
}

export async function runDoctor(config: Config, services: Services, opts: { fix: boolean }): Promise<DoctorResult> {
  const layout = layoutOf(config.root);
  const now = services.clock.now();
  let checks = await collect(config, services, layout, now);
  if (opts.fix && checks.some((c) => c.fix)) {
    const lock = acquireLock(layout.lock, 'doctor');
    try {
      for (const c of checks) {
        if (!c.fix) continue;
        await c.fix();
        c.finding.fixed = true;
      }
    } finally {
      lock.release();
    }
    const fixed = checks.filter((c) => c.finding.fixed).map((c) => c.finding);
    // What is left after the repairs, plus what was repaired.
    checks = await collect(config, services, layout, now);
    const left = checks.map((c) => c.finding);
    return { ok: !left.some((f) => f.severity === 'error'), findings: [...fixed, ...left] };
  }
  const findings = checks.map((c) => c.finding);
  return { ok: !findings.some((f) => f.severity === 'error'), findings };
}
