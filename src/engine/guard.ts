/**
 * Before any command writes under the install root: the config it obeys and every directory it
 * writes into must be beyond the reach of other local users (see layout/trusted-path.ts), and
 * the layout must exist with the right owners and modes.
 */
import { chownSync, lstatSync, mkdirSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { CutoverError, errnoCode, fsError } from '../errors.ts';
import type { Layout } from '../layout/paths.ts';
import { checkTrustedDir, checkTrustedFile } from '../layout/trusted-path.ts';
import type { Reporter } from '../report.ts';

/** The config file a root process obeys must be root's alone, as must the directories above it. */
/** What the guards read of the config: the file itself, what it trusts, and the app's account. */
type GuardedConfig = Pick<Config, 'file' | 'trust' | 'source' | 'user'>;

export function guardConfig(config: GuardedConfig): void {
  checkTrustedFile(path.resolve(config.file), { what: 'config file' });
  // What the config points at decides what is trusted: a pinned Sigstore root, an extra CA.
  if (config.trust.trustedRoot) checkTrustedFile(config.trust.trustedRoot, { what: 'trust.trusted_root' });
  if (config.source.ca) checkTrustedFile(config.source.ca, { what: 'source.ca' });
}

/**
 * Check the config, the root, `.cutover` and `releases` (and every parent up to /). With
 * `create`, make what is missing first: root, releases/ and .cutover/ 0755 root, runtime/ once,
 * owned by `user`. runtime/ itself is the operator's and is never checked or changed.
 */
export function guardInstallRoot(config: GuardedConfig, layout: Layout, reporter: Reporter, opts: { create: boolean }): void {
  guardConfig(config);
  checkTrustedDir(layout.root, { what: 'install root', allowMissing: true });
  if (opts.create) createLayout(config, layout, reporter);
  checkTrustedDir(layout.root, { what: 'install root', allowMissing: !opts.create });
  for (const dir of [layout.state, layout.releases]) checkTrustedDir(dir, { what: 'cutover directory', allowMissing: !opts.create });
  // Refused before anything changes (they are only written at the end of an operation).
  for (const file of [layout.stateFile, layout.historyFile]) {
    const st = lstatOrNull(file);
    if (st && !st.isFile()) {
      throw new CutoverError(
        'E_UNSAFE_PATH',
        `${file} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}, where cutover keeps a file of its own`,
        {
          hint: `someone planted it; remove it (rm ${file}) and check who could write ${layout.state}`,
          details: { path: file },
        },
      );
    }
  }
}

function lstatOrNull(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw fsError('inspect', p, e);
  }
}

function createLayout(config: GuardedConfig, layout: Layout, reporter: Reporter): void {
  try {
    mkdirSync(layout.root, { recursive: true, mode: 0o755 });
    mkdirSync(layout.releases, { recursive: true, mode: 0o755 });
    mkdirSync(layout.state, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw fsError('create', layout.root, e);
  }
  ensureRuntime(config, layout, reporter);
}

/** runtime/ is created once, owned by the app's user and its primary group, mode 0750; then it is the operator's. */
function ensureRuntime(config: GuardedConfig, layout: Layout, reporter: Reporter): void {
  const user = config.user;
  const st = lstatOrNull(layout.runtime);
  if (!st) {
    try {
      mkdirSync(layout.runtime, { mode: 0o750 });
      if (user?.uid !== undefined && user.gid !== undefined) chownSync(layout.runtime, user.uid, user.gid);
    } catch (e) {
      throw fsError('create', layout.runtime, e);
    }
    return;
  }
  if (!user || user.uid === undefined) return;
  const writable = (st.uid === user.uid && (st.mode & 0o200) !== 0) || (st.gid === user.gid && (st.mode & 0o020) !== 0) || (st.mode & 0o002) !== 0;
  if (!st.isDirectory() || !writable) {
    reporter.warn(
      `${layout.runtime} is not writable by ${user.name} (owner uid ${st.uid}, mode 0${(st.mode & 0o7777).toString(8)}); cutover leaves it as it is. If the app must write there: chown ${user.name}: ${layout.runtime}`,
    );
  }
}
