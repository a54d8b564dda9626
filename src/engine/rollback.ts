import { CutoverError } from '../errors.ts';
import type { Config } from '../config/config.ts';
import { layoutOf, type Layout } from '../layout/paths.ts';
import { isInstalled, listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';
import { checkManifest, readReleaseManifest } from '../release/manifest.ts';
import { checkVersion } from '../release/release-index.ts';
import { releaseDir } from '../layout/paths.ts';
import { acquireLock } from '../state/lock.ts';
import { appendHistory } from '../state/state.ts';
import { guardInstallRoot } from './guard.ts';
import { recover } from './recover.ts';
import type { Services } from './services.ts';
import { activate, rollBackUnhealthy } from './activate.ts';
import { settle, switchTo } from './switch.ts';

export interface RollbackResult {
  op: 'rollback';
  app: string;
  root: string;
  from: string | null;
  to: string;
  durationMs: number;
}

/** Switch `current` back to the previous release, or to a named retained one. */
export async function runRollback(config: Config, services: Services, opts: { to?: string | undefined; noRestart?: boolean }): Promise<RollbackResult> {
  const started = Date.now();
  const layout = layoutOf(config.root);
  guardInstallRoot(config, layout, services.reporter, { create: false });
  const lock = acquireLock(layout.lock, 'rollback');
  try {
    const { state } = await recover(config, services, layout);
    const current = await readCurrent(layout);
    let target: string;
    if (opts.to !== undefined) {
      const checked = checkVersion(opts.to);
      if (!checked.ok) throw new CutoverError('E_USAGE', `--to ${checked.reason.replace(/^version /, '')}`, { hint: 'pass a version like v1.3.2' });
      target = checked.version;
    } else {
      if (!state.previous) {
        throw new CutoverError('E_NO_PREVIOUS', 'there is no previous release to roll back to', {
          hint: 'use `rollback --to vX` with a release from `list`',
        });
      }
      target = state.previous;
    }
    if (!(await isInstalled(layout, target))) {
      const have = (await listInstalled(layout)).map((v) => `v${v}`);
      throw new CutoverError('E_NOT_INSTALLED', `v${target} is not installed under ${layout.releases}`, {
        hint: have.length ? `retained releases: ${have.join(', ')}` : 'no releases are retained; use `update --version`',
      });
    }
    if (target === current) {
      throw new CutoverError('E_USAGE', `v${target} is already current`, { hint: 'pick another release from `list`' });
    }
    // A retained release must still be whole and be what it claims to be before it goes live.
    await checkRetained(layout, config.app, target);
    const activating = !opts.noRestart && config.service.units.length > 0;
    const previousBefore = state.previous;
    await switchTo(layout, state, current, target, 'rollback', services, { activating });
    if (activating) {
      const outcome = await activate(config, services, target, new AbortController().signal);
      if (!outcome.ok) {
        // The release we rolled back to is unhealthy: go back to where we were.
        await rollBackUnhealthy(config, services, layout, state, target, current, outcome.reason, previousBefore);
      }
      await settle(layout, state);
    }
    await appendHistory(layout, {
      at: new Date().toISOString(),
      op: 'rollback',
      from: current,
      to: target,
      result: 'ok',
      durationMs: Date.now() - started,
    });
    services.reporter.step(`${config.app} is now on v${target}${current ? ` (was v${current})` : ''}`);
    return { op: 'rollback', app: config.app, root: config.root, from: current, to: target, durationMs: Date.now() - started };
  } finally {
    lock.release();
  }
}

/**
 * A retained release is checked again before it goes live: its release.json must still be there,
 * readable, and name this app and version. Anything else means the tree under releases/ was
 * damaged or changed after install (E_RELEASE_DAMAGED), not that a vendor shipped a bad archive.
 */
export async function checkRetained(layout: Layout, app: string, version: string): Promise<void> {
  const dir = releaseDir(layout, version);
  try {
    checkManifest(await readReleaseManifest(dir), { name: app, version });
  } catch (e) {
    if (!(e instanceof CutoverError) || e.code !== 'E_RELEASE_MANIFEST') throw e;
    throw new CutoverError('E_RELEASE_DAMAGED', `installed release v${version} is damaged: ${e.message}`, {
      hint: `roll back to another release from \`list\`, or remove ${dir} and reinstall it with \`update --version v${version}\``,
      cause: e,
      details: { version, dir, ...e.details },
    });
  }
}
