/**
 * `cutover release pack | verify | index`: the vendor's side. No cutover.toml, no root, nothing
 * written outside `--out` and the index file. Flags are checked before any I/O, like everywhere.
 */
import { homedir } from 'node:os';
import type { Command } from 'commander';
import { Option } from 'commander';
import { CutoverError } from '../errors.ts';
import { APP_NAME } from '../config/config.ts';
import { formatBytes } from '../report.ts';
import { versionFlag } from './flags.ts';

interface Io {
  /** Print the result (JSON with --json, else the human line) and remember the global flags. */
  emit(cmd: Command, result: unknown, human: () => string | null): void;
  /** Human progress on stderr. */
  say(cmd: Command, line: string): void;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

const usage = (message: string, hint: string): CutoverError => new CutoverError('E_USAGE', message, { hint });

function wholeNumber(flag: string): (v: string) => number {
  return (v) => {
    if (!/^\d{1,9}$/.test(v)) throw usage(`${flag} ${JSON.stringify(v)} is not a whole number`, `pass e.g. ${flag} 3`);
    return Number(v);
  };
}

function argv(flag: string): (v: string) => string[] {
  return (v) => {
    const a = v.trim().split(/\s+/).filter(Boolean);
    if (!a.length) throw usage(`${flag} is empty`, `pass the command, e.g. ${flag} "bin/migrate --all"`);
    return a;
  };
}

function appName(v: string): string {
  if (!APP_NAME.test(v)) throw usage(`--name ${JSON.stringify(v)} is not an app name`, 'letters, digits, ".", "_" or "-", as `app` in cutover.toml');
  return v;
}

/** SOURCE_DATE_EPOCH (reproducible builds): whole seconds since the epoch, 0 when unset. */
function sourceDateEpoch(env: NodeJS.ProcessEnv): number {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return 0;
  if (!/^\d{1,12}$/.test(v))
    throw usage(`SOURCE_DATE_EPOCH=${JSON.stringify(v)} is not a whole number of seconds`, 'set it to e.g. $(git log -1 --format=%ct), or unset it');
  return Number(v);
}

export function addReleaseCommands(program: Command, io: Io): void {
  const release = program.command('release').description('for vendors: pack, sign, index and verify releases (reads no cutover.toml, needs no root)');

  release
    .command('pack')
    .description('a reproducible release archive from a build directory: OUT/NAME-VERSION.tar.gz')
    .argument('<dir>', 'the build directory')
    .addOption(new Option('--name <name>', "the app name (as `app` in operators' cutover.toml)").argParser(appName).makeOptionMandatory())
    .addOption(new Option('--version <version>', 'the release version, e.g. 1.4.0').argParser(versionFlag('--version', '1.4.0')).makeOptionMandatory())
    .option('--out <dir>', 'where the archive goes (created if missing)', '.')
    .addOption(new Option('--schema <n>', 'release.json "schema"').argParser(wholeNumber('--schema')))
    .addOption(new Option('--rollback-safe-schema <n>', 'release.json "rollback_safe_schema"').argParser(wholeNumber('--rollback-safe-schema')))
    .addOption(new Option('--migrate <command>', 'release.json "migrate", e.g. "bin/migrate"').argParser(argv('--migrate')))
    .addOption(new Option('--migrate-pending <command>', 'release.json "migrate_pending"').argParser(argv('--migrate-pending')))
    .option('--upgrade-from <range>', 'release.json "upgrade_from", e.g. ">=1.4.0"')
    .action(
      async (
        dir: string,
        o: {
          name: string;
          version: string;
          out: string;
          schema?: number;
          rollbackSafeSchema?: number;
          migrate?: string[];
          migratePending?: string[];
          upgradeFrom?: string;
        },
        cmd: Command,
      ) => {
        const mtime = sourceDateEpoch(io.env);
        const fields: Record<string, unknown> = {
          ...(o.schema !== undefined ? { schema: o.schema } : {}),
          ...(o.rollbackSafeSchema !== undefined ? { rollback_safe_schema: o.rollbackSafeSchema } : {}),
          ...(o.migrate ? { migrate: o.migrate } : {}),
          ...(o.migratePending ? { migrate_pending: o.migratePending } : {}),
          ...(o.upgradeFrom !== undefined ? { upgrade_from: o.upgradeFrom } : {}),
        };
        const { packRelease } = await import('../release/pack.ts');
        const r = await packRelease({ dir, name: o.name, version: o.version, out: o.out, fields, mtime });
        io.say(cmd, `packed ${r.file}: ${formatBytes(r.size)} (${formatBytes(r.unpacked_size)} unpacked), sha256 ${r.sha256}`);
        io.emit(cmd, r, () => null);
      },
    );

  release
    .command('sign')
    .description('sign a file with Sigstore: FILE.sigstore.json beside it')
    .argument('<file>', 'the release archive (or any file)')
    .option('--identity-token <jwt>', "the OIDC token to certify (default: $SIGSTORE_ID_TOKEN, else the GitHub Actions job's own)")
    .addOption(new Option('--fulcio-url <url>', 'Fulcio base URL').default('https://fulcio.sigstore.dev').argParser(httpUrl('--fulcio-url')))
    .addOption(new Option('--rekor-url <url>', 'Rekor base URL').default('https://rekor.sigstore.dev').argParser(httpUrl('--rekor-url')))
    .addOption(new Option('--tsa-url <url>', 'RFC 3161 timestamp authority base URL (optional)').argParser(httpUrl('--tsa-url')))
    .addOption(
      new Option('--version <version>', "for the trust.identity template it prints (default: the archive's release.json)").argParser(
        versionFlag('--version', '1.4.0'),
      ),
    )
    .action(async (file: string, o: { identityToken?: string; fulcioUrl: string; rekorUrl: string; tsaUrl?: string; version?: string }, cmd: Command) => {
      const { identityTemplate, identityToken, signFile } = await import('../release/sign.ts');
      const token = await identityToken(o.identityToken, io.env, io.signal);
      const r = await signFile({ file, token, fulcioUrl: o.fulcioUrl, rekorUrl: o.rekorUrl, tsaUrl: o.tsaUrl });
      let v = o.version;
      if (v === undefined) {
        const { archiveInfo } = await import('../release/archive-info.ts');
        const m = await archiveInfo(file).catch(() => undefined);
        v = typeof m?.manifest.version === 'string' ? m.manifest.version.replace(/^v/i, '') : undefined;
      }
      const template = identityTemplate(r.identity, v);
      io.say(cmd, `wrote ${r.bundle}`);
      io.say(cmd, `identity: ${r.identity}`);
      io.say(cmd, `issuer:   ${r.issuer}`);
      if (template) io.say(cmd, `operators configure: [trust] identity = "${template}", issuer = "${r.issuer}"`);
      io.emit(cmd, { ...r, ...(template ? { template } : {}) }, () => null);
    });

  release
    .command('verify')
    .description('verify a file and its Sigstore bundle exactly as `update` does')
    .argument('<file>', 'the release archive (or any file)')
    .requiredOption('--identity <identity>', 'the exact certificate identity; {version} is replaced')
    .requiredOption('--issuer <issuer>', 'the exact OIDC issuer')
    .addOption(
      new Option('--version <version>', "for {version} in the identity (default: the archive's release.json)").argParser(versionFlag('--version', '1.4.0')),
    )
    .option('--bundle <file>', 'the Sigstore bundle (default: FILE.sigstore.json)')
    .option('--trusted-root <file>', 'trust this trusted_root.json instead of the public-good root (TUF)')
    .action(async (file: string, o: { identity: string; issuer: string; version?: string; bundle?: string; trustedRoot?: string }, cmd: Command) => {
      const { verifyFile } = await import('../release/verify-file.ts');
      const r = await verifyFile({
        file,
        bundle: o.bundle,
        identity: o.identity,
        issuer: o.issuer,
        version: o.version,
        trustedRoot: o.trustedRoot,
        tufCache: userCache(io.env),
        signal: io.signal,
      });
      io.say(cmd, `verified ${r.file}: signed by ${r.identity} (issuer ${r.issuer}), sha256 ${r.sha256}`);
      io.emit(cmd, r, () => null);
    });

  release
    .command('index')
    .description('add a release to an index.json (created if missing), or remove one')
    .argument('<index>', 'the index file, e.g. out/index.json')
    .option('--add <file>', 'a packed and signed release archive (FILE.sigstore.json beside it)')
    .addOption(new Option('--remove <version>', 'drop this version (yanked)').argParser(versionFlag('--remove', '1.4.0')))
    .option('--base-url <url>', 'absolute URL the files are published under (default: URLs relative to the index)')
    .action(async (index: string, o: { add?: string; remove?: string; baseUrl?: string }, cmd: Command) => {
      if ((o.add === undefined) === (o.remove === undefined))
        throw usage('pass exactly one of --add FILE and --remove VERSION', 'e.g. `release index out/index.json --add out/demo-1.4.0.tar.gz`');
      if (o.baseUrl !== undefined) {
        let u: URL | undefined;
        try {
          u = new URL(o.baseUrl);
        } catch {
          u = undefined;
        }
        if (u?.protocol !== 'https:') throw usage(`--base-url ${JSON.stringify(o.baseUrl)} is not an https URL`, 'operators fetch releases over https only');
      }
      const { addToIndex, removeFromIndex } = await import('../release/index-file.ts');
      const r = o.add !== undefined ? await addToIndex({ index, file: o.add, baseUrl: o.baseUrl }) : await removeFromIndex({ index, version: o.remove! });
      io.say(cmd, `${r.action === 'unchanged' ? `v${r.version} is already listed with the same bytes` : `${r.action} v${r.version}`} in ${r.index}`);
      io.emit(cmd, r, () => null);
    });
}

function httpUrl(flag: string): (v: string) => string {
  return (v) => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw usage(`${flag} ${JSON.stringify(v)} is not a URL`, `pass a base URL such as https://fulcio.sigstore.dev`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw usage(`${flag} must be an http(s) URL`, "pass the service's base URL");
    return v;
  };
}

/** The user's cache directory for TUF metadata: $XDG_CACHE_HOME/cutover, or ~/.cache/cutover. */
function userCache(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : `${env.HOME ?? homedir()}/.cache`;
  return `${base}/cutover/tuf`;
}
