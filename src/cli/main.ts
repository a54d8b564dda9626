import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { loadConfig, resolveConfigPath, type Config } from '../config/config.ts';
import { getStatus, listReleases, type Interrupted } from '../engine/status.ts';
import { stepLine, type Step } from '../engine/steps.ts';
import { CutoverError, EXIT, type ExitCode } from '../errors.ts';
import { formatBytes } from '../report.ts';
import { escapeControls, escapeDeep } from '../text.ts';
import { reportFailure } from './exit.ts';
import { versionFlag } from './flags.ts';
import { addReleaseCommands } from './release-commands.ts';
import { embeddedVersions } from '../system/embedded.ts';
import { TerminalReporter } from './output.ts';
// The engine (undici, Sigstore, tar) loads only for the commands that need it: `status`,
// `list`, `--help` and `--version` start in about half the time.

interface GlobalOptions {
  config?: string;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

/** The name cutover was invoked as: `app` through /usr/local/bin/app, else `cutover`. */
export function programName(argv1: string | undefined, env: NodeJS.ProcessEnv): string {
  const fromEnv = env.CUTOVER_PROG?.trim();
  const name = fromEnv || path.basename(argv1 ?? 'cutover');
  // A script path (node dist/cli/run.js) is cutover itself; a vendor's name comes from the launcher.
  if (/\.(c|m)?(j|t)s$/.test(name) || name === 'node' || /^\.+$/.test(name) || !/^[A-Za-z0-9._-]+$/.test(name)) return 'cutover';
  return name;
}

/** cutover's own version: embedded in the single executable, else from the package.json two levels above this module (src/ or dist/). */
function cutoverVersion(): string {
  const embedded = embeddedVersions();
  if (embedded) return embedded.cutover;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<ExitCode> {
  // argv[1]: the script under node, the name it was invoked by in the single executable.
  const prog = programName(argv[1], env);
  // Only as the first argument: `update --version X` is the update's own option.
  if (argv[2] === '--version' || argv[2] === '-V') {
    const version = cutoverVersion();
    const rest = argv.slice(3);
    if (rest.includes('--json')) process.stdout.write(`${JSON.stringify({ ok: true, cutover: version, node: process.version })}\n`);
    else process.stdout.write(`${prog === 'cutover' ? '' : `${prog}: `}cutover ${version} (Node ${process.version})\n`);
    return EXIT.OK;
  }
  let exitCode: ExitCode = EXIT.OK;
  let globals: GlobalOptions = {};
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) return;
    controller.abort(
      new CutoverError('E_INTERRUPTED', `interrupted by ${sig}`, { hint: 'nothing was switched; run the command again', details: { signal: sig } }),
    );
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const program = new Command(prog)
    .description(`${prog}: signed, atomic releases (cutover)`)
    .addOption(new Option('-c, --config <file>', `config file (default: $CUTOVER_CONFIG or /etc/${prog}/cutover.toml)`))
    .option('--json', 'print one JSON object describing the result on stdout')
    .option('-q, --quiet', 'print only errors')
    .option('-v, --verbose', 'print stack traces for internal errors')
    .addHelpText('after', `\nRun \`${prog} --version\` for the version of cutover. Exit codes: docs/errors.md.`)
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .showHelpAfterError(false);

  const configOf = async (cmd: Command): Promise<Config> => {
    globals = cmd.optsWithGlobals<GlobalOptions>();
    return loadConfig(resolveConfigPath(prog, globals.config, env));
  };
  const context = async (cmd: Command) => {
    const config = await configOf(cmd);
    const { createServices } = await import('../engine/services.ts');
    const reporter = new TerminalReporter(prog, { json: !!globals.json, quiet: !!globals.quiet, verbose: !!globals.verbose });
    return { config, services: createServices(config, reporter) };
  };
  const emit = (result: unknown, human: () => string | null): void => {
    if (globals.json) process.stdout.write(`${JSON.stringify(escapeDeep({ ok: true, ...(result as object) }))}\n`);
    else {
      const text = human();
      if (text) process.stdout.write(`${escapeTable(text)}\n`);
    }
  };

  program
    .command('update')
    .description('download, verify and switch to a release (default: the newest stable one)')
    .addOption(new Option('--version <version>', 'the release to install, e.g. v1.4.0').argParser(versionFlag('--version', 'v1.4.0')))
    .option('--dry-run', 'download and verify in a TMPDIR sandbox, print the plan, change nothing')
    .option('--allow-downgrade', 'allow installing a version older than the current one')
    .option('--no-restart', 'switch the pointer only: no unit restarts, no health gate')
    .option('--force', 'update even if the current deployment fails its pre-flight health check')
    .option('--rehearse', 'with --dry-run: run the migration against a scratch copy of the database')
    .action(
      async (opts: { version?: string; dryRun?: boolean; allowDowngrade?: boolean; restart: boolean; force?: boolean; rehearse?: boolean }, cmd: Command) => {
        if (opts.rehearse && !opts.dryRun)
          throw new CutoverError('E_USAGE', '--rehearse only goes with --dry-run', { hint: 'run `update --dry-run --rehearse`' });
        const { config, services } = await context(cmd);
        const { runUpdate } = await import('../engine/update.ts');
        try {
          const r = await runUpdate(config, services, {
            version: opts.version,
            dryRun: !!opts.dryRun,
            allowDowngrade: !!opts.allowDowngrade,
            noRestart: !opts.restart,
            force: !!opts.force,
            rehearse: !!opts.rehearse,
            signal: controller.signal,
          });
          emit(r, () => {
            if (!r.dryRun) return null;
            const lines = [`Plan for ${r.app} under ${r.root} (dry run: nothing was changed)`];
            lines.push(`  current:  ${r.from ? `v${r.from}` : '(none)'}`);
            lines.push(`  target:   v${r.to}${r.downgrade ? ' (downgrade)' : ''}`);
            lines.push(`  action:   ${describeAction(r.action)}`);
            if (r.verified) lines.push(`  signed:   ${r.verified.identity} (${r.verified.issuer})`);
            if (r.extracted) lines.push(`  contents: ${r.extracted.files} files, ${formatBytes(r.extracted.bytes)}`);
            lines.push(`  prune:    ${r.pruned.length ? r.pruned.map((v) => `v${v}`).join(', ') : '(nothing)'}`);
            lines.push(`  rollback: ${r.rollbackTarget ? `v${r.rollbackTarget}` : '(none)'}`);
            lines.push(`  schema:   ${r.schema ? `${r.schema.from ?? '(none)'} -> ${r.schema.to}` : 'no change'}`);
            if (r.backup) lines.push(`  backup:   ${r.backup.file} (about ${formatBytes(r.backup.estimatedBytes)})`);
            const stop = r.steps.find((s) => s.kind === 'stop');
            if (stop) lines.push(`  stops:    ${(stop.units as string[]).join(', ')} (then starts them in order)`);
            const mig = r.steps.find((s) => s.kind === 'migrate');
            if (mig) lines.push(`  migrate:  ${(mig.argv as string[]).join(' ')}`);
            if (r.pending) lines.push(`  pending:  ${r.pending.length ? r.pending.join('\n            ') : '(none listed)'}`);
            if (r.rehearsed) lines.push(`  rehearsal: passed on a copy of the database`);
            if (r.steps.length) {
              lines.push('  steps (done: run by this dry run; planned: what `update` would also do):');
              r.steps.forEach((s, i) => lines.push(`    ${String(i + 1).padStart(2)}. ${stepLine(s as unknown as Step).padEnd(64)} ${String(s.outcome)}`));
            }
            return lines.join('\n');
          });
        } finally {
          await services.http.close();
        }
      },
    );

  program
    .command('rollback')
    .description('switch back to the previous release, or to a retained one with --to')
    .addOption(new Option('--to <version>', 'a retained release, e.g. v1.3.2').argParser(versionFlag('--to', 'v1.3.2')))
    .option('--no-restart', 'switch the pointer only: no unit restarts, no health gate')
    .option('--restore', 'also put back the database backup taken when that release was left (loses what was written since)')
    .option('--ignore-schema', 'switch the code only, even onto a database schema the release was not built for')
    .option('-y, --yes', 'do not ask before a restore (needed without a terminal)')
    .option('--force', 'roll back even onto a release that was changed after it was installed (see `verify`)')
    .action(async (opts: { to?: string; restart: boolean; restore?: boolean; ignoreSchema?: boolean; yes?: boolean; force?: boolean }, cmd: Command) => {
      if (opts.restore && opts.ignoreSchema) throw new CutoverError('E_USAGE', '--restore and --ignore-schema contradict each other', { hint: 'pick one' });
      if (opts.restore) needConsent(!!opts.yes, 'rollback --restore');
      const { config, services } = await context(cmd);
      if (opts.restore && !opts.yes)
        await confirm(
          config.app,
          `This puts back the database as it was on ${opts.to ? `v${opts.to}` : 'the previous release'}: what was written since is lost.`,
        );
      const { runRollback } = await import('../engine/rollback.ts');
      const r = await runRollback(config, services, {
        to: opts.to,
        noRestart: !opts.restart,
        restore: !!opts.restore,
        ignoreSchema: !!opts.ignoreSchema,
        force: !!opts.force,
      });
      emit(r, () => null);
    });

  program
    .command('doctor')
    .description('check this install and explain what is wrong (with --fix: repair what is safe to repair)')
    .option('--fix', "repair leftovers, loose modes on cutover's own files and an interrupted operation (takes the lock; never deletes a release or a backup)")
    .action(async (opts: { fix?: boolean }, cmd: Command) => {
      const { config, services } = await context(cmd);
      const { runDoctor } = await import('../engine/doctor.ts');
      try {
        const r = await runDoctor(config, services, { fix: !!opts.fix });
        const problems = r.findings.filter((f) => f.severity === 'error' && !f.fixed);
        emit(r, () =>
          r.findings.length
            ? r.findings
                .map((f) => `${f.fixed ? 'fixed ' : ''}${f.code} ${f.path}: ${f.message}${f.fixable && !f.fixed ? ' (doctor --fix repairs it)' : ''}`)
                .join('\n')
            : 'no problems found',
        );
        if (problems.length) {
          // The findings are the report (stdout, or the --json document); the exit code says there are problems.
          const hint = problems.some((f) => f.fixable)
            ? 'run `doctor --fix` for what it can repair; the others say what to do'
            : 'each finding says what to do';
          process.stderr.write(
            `${prog}: E_DOCTOR: ${problems.length} problem${problems.length > 1 ? 's' : ''} found (${problems.map((f) => f.code).join(', ')}); ${hint}\n`,
          );
          exitCode = EXIT.FILESYSTEM;
        }
      } finally {
        await services.http.close();
      }
    });

  program
    .command('verify')
    .description('check installed releases against what was verified and installed (default: current)')
    .argument('[version]', 'a retained release, e.g. v1.3.2 (default: current)')
    .option('--all', 'every installed release')
    .action(async (version: string | undefined, opts: { all?: boolean }, cmd: Command) => {
      const wanted = version === undefined ? undefined : versionFlag('verify', 'v1.3.2')(version);
      if (wanted !== undefined && opts.all) throw new CutoverError('E_USAGE', 'pass a version or --all, not both', { hint: 'e.g. `verify --all`' });
      const config = await configOf(cmd);
      const { verifyInstalled } = await import('../engine/verify-installed.ts');
      const checks = await verifyInstalled(config, { version: wanted, all: !!opts.all });
      const reporter = new TerminalReporter(prog, { json: !!globals.json, quiet: !!globals.quiet, verbose: false });
      for (const c of checks)
        if (c.status === 'unrecorded')
          reporter.warn(
            `W_RELEASE_UNRECORDED: v${c.version} was installed before cutover kept install records; it cannot be checked (reinstall it to record it)`,
          );
      emit({ releases: checks }, () =>
        checks
          .map((c) =>
            c.status === 'ok'
              ? `v${c.version}: ok (${c.entries} entries as installed)`
              : c.status === 'unrecorded'
                ? `v${c.version}: unrecorded`
                : [`v${c.version}: MODIFIED`, ...c.findings.map((f) => `  ${f.problem.padEnd(8)} ${f.path}: ${f.detail}`)].join('\n'),
          )
          .join('\n'),
      );
      const bad = checks.filter((c) => c.status === 'modified');
      if (bad.length) {
        throw new CutoverError(
          'E_RELEASE_MODIFIED',
          `${bad.map((c) => `v${c.version}`).join(', ')} changed after ${bad.length > 1 ? 'they were' : 'it was'} verified and installed`,
          {
            hint: 'reinstall it (remove releases/vX, then `update --version vX`); `rollback` refuses it meanwhile',
            details: { releases: bad },
          },
        );
      }
    });

  program
    .command('backups')
    .description('the database backups cutover keeps')
    .action(async (_opts: unknown, cmd: Command) => {
      const { listBackups } = await import('../engine/backup-ops.ts');
      const rows = await listBackups(await configOf(cmd));
      emit({ backups: rows }, () => {
        if (!rows.length) return '(no backups)';
        return rows
          .map(
            (b) =>
              `${b.id.padEnd(30)} ${(b.version ? `v${b.version}` : '-').padEnd(10)} schema ${String(b.schema ?? '-').padEnd(4)} ${b.reason.padEnd(12)} ${formatBytes(b.bytes).padStart(10)}  ${b.file}${b.protects ? `  (protects v${b.protects})` : ''}`,
          )
          .join('\n');
      });
    });

  program
    .command('backup')
    .description('back up the database now')
    .action(async (_opts: unknown, cmd: Command) => {
      const { config, services } = await context(cmd);
      const { runBackup } = await import('../engine/backup-ops.ts');
      const r = await runBackup(config, services);
      emit(r, () => `backup ${r.id} taken`);
    });

  program
    .command('restore')
    .description('put the database back from a backup (see `backups`); the current release stays')
    .argument('<id>', 'a backup id from `backups`')
    .option('--ignore-schema', 'restore a backup of another schema than the current release runs on')
    .option('-y, --yes', 'do not ask first (needed without a terminal)')
    .action(async (id: string, opts: { ignoreSchema?: boolean; yes?: boolean }, cmd: Command) => {
      if (!/^[A-Za-z0-9._-]{1,128}$/.test(id))
        throw new CutoverError('E_USAGE', `${JSON.stringify(id.slice(0, 60))} is not a backup id`, { hint: 'pick an id from `backups`' });
      needConsent(!!opts.yes, 'restore');
      const { config, services } = await context(cmd);
      if (!opts.yes) await confirm(config.app, `This replaces the database with backup ${id}: what was written since is lost.`);
      const { runRestore } = await import('../engine/backup-ops.ts');
      const r = await runRestore(config, services, { id, ignoreSchema: !!opts.ignoreSchema });
      emit(r, () => null);
    });

  program
    .command('status')
    .description('what is current, what rollback would return to, the last operation')
    .action(async (_opts: unknown, cmd: Command) => {
      const s = await getStatus(await configOf(cmd));
      emit(s, () => {
        const last = s.lastOperation;
        return [
          `app:       ${s.app}`,
          `root:      ${s.root}`,
          `current:   ${s.current ? `v${s.current}` : '(none)'}`,
          `previous:  ${s.previous ? `v${s.previous}` : '(none)'}`,
          `installed: ${s.installed.map((v) => `v${v}`).join(', ') || '(none)'}`,
          ...(s.bad.length ? [`bad:       ${s.bad.map((v) => `v${v}`).join(', ')}`] : []),
          ...(s.database
            ? [
                `database:  schema ${s.database.schema} (brought there by v${s.database.version}, ${s.database.via}; rollback_safe_schema ${s.database.rollbackSafe})`,
              ]
            : []),
          ...(s.interrupted ? [`interrupted: ${describeInterrupted(s.interrupted)}`] : []),
          `last:      ${last ? `${last.at} ${last.op} ${last.from ? `v${last.from}` : '-'} -> ${last.to ? `v${last.to}` : '-'}: ${last.result}${last.code ? ` (${last.code})` : ''}` : '(none)'}`,
        ].join('\n');
      });
    });

  program
    .command('list')
    .description('installed releases')
    .action(async (_opts: unknown, cmd: Command) => {
      const rows = await listReleases(await configOf(cmd));
      emit({ releases: rows }, () => {
        if (!rows.length) return '(no releases installed)';
        return rows
          .map((r) => {
            const marks = [r.current && 'current', r.previous && 'previous', r.bad && 'bad'].filter(Boolean).join(', ');
            return `${r.current ? '*' : ' '} v${r.version.padEnd(12)} ${String(r.files).padStart(7)} files ${formatBytes(r.bytes).padStart(10)}  ${r.installedAt ?? ''}${marks ? `  (${marks})` : ''}`;
          })
          .join('\n');
      });
    });

  program
    .command('gc')
    .description('remove old releases, keeping current, previous and --keep others')
    .addOption(
      new Option('--keep <n>', `releases to keep besides current, previous among them (${MIN_KEEP} to ${MAX_KEEP}; previous is always kept)`).argParser(
        keepFlag,
      ),
    )
    .action(async (opts: { keep?: number }, cmd: Command) => {
      const { config, services } = await context(cmd);
      const { runGc } = await import('../engine/gc.ts');
      const r = await runGc(config, services, { keep: opts.keep });
      emit(r, () => (r.pruned.length ? `removed ${r.pruned.map((v) => `v${v}`).join(', ')}` : null));
    });

  program
    .command('check')
    .description('is a newer release available, and would the daemon install it by itself?')
    .action(async (_opts: unknown, cmd: Command) => {
      const { config, services } = await context(cmd);
      const { runCheck } = await import('../engine/check.ts');
      try {
        const r = await runCheck(config, { ...services, reporter: new TerminalReporter(prog, { json: true, quiet: true, verbose: false }) }, controller.signal);
        emit(r, () =>
          [
            `current:   ${r.current ? `v${r.current}` : '(none)'}`,
            `newest:    ${r.newest ? `v${r.newest}` : '(none)'}`,
            `available: ${r.available ? 'yes' : 'no'}`,
            `daemon:    ${r.reason}`,
          ].join('\n'),
        );
      } finally {
        await services.http.close();
      }
    });

  program
    .command('daemon')
    .description('run as a systemd Type=notify service that checks for releases on a schedule')
    .action(async (_opts: unknown, cmd: Command) => {
      globals = cmd.optsWithGlobals<GlobalOptions>();
      const file = resolveConfigPath(prog, globals.config, env);
      const [{ JournalReporter, runDaemon }, { SystemdNotifier }] = await Promise.all([import('../daemon/daemon.ts'), import('../daemon/notify.ts')]);
      await runDaemon(file, { notifier: new SystemdNotifier(env), reporter: new JournalReporter(), now: () => new Date(), jitter: 0.1 }, controller.signal);
    });

  addReleaseCommands(program, {
    emit: (cmd, result, human) => {
      globals = cmd.optsWithGlobals<GlobalOptions>();
      emit(result, human);
    },
    say: (cmd, line) => {
      globals = cmd.optsWithGlobals<GlobalOptions>();
      if (!globals.quiet) process.stderr.write(`${prog}: ${escapeControls(line)}\n`);
    },
    env,
    signal: controller.signal,
  });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return EXIT.OK;
      exitCode = reportFailure(new CutoverError('E_USAGE', e.message.replace(/^error: /, ''), { hint: `see \`${prog} --help\`` }), {
        prog,
        json: !!globals.json || argv.includes('--json'),
        verbose: false,
      });
    } else {
      // A flag refused while parsing is reported before any action ran (globals not read yet).
      exitCode = reportFailure(interruption(e, controller.signal), { prog, json: !!globals.json || argv.includes('--json'), verbose: !!globals.verbose });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return exitCode;
}

/** A failure caused by Ctrl-C or SIGTERM is reported as the interruption, unless it says more. */
function interruption(e: unknown, signal: AbortSignal): unknown {
  if (!signal.aborted) return e;
  if (e instanceof CutoverError && (e.code === 'E_UNHEALTHY' || e.code === 'E_ROLLBACK_FAILED' || e.code === 'E_INTERRUPTED')) return e;
  return signal.reason;
}

/*
 * Flags are checked while the command line is parsed, before any action runs: a malformed
 * value never reaches the release server, the lock or anything under root.
 */

const MIN_KEEP = 0;
const MAX_KEEP = 100;

/** `gc --keep N`: a whole number from 0 to 100 (the same range as `keep` in the config). */
function keepFlag(v: string): number {
  const n = /^\d{1,3}$/.test(v) ? Number(v) : NaN;
  if (!(n >= MIN_KEEP && n <= MAX_KEEP)) {
    throw new CutoverError('E_USAGE', `--keep ${JSON.stringify(v)} is refused: it must be a whole number from ${MIN_KEEP} to ${MAX_KEEP}`, {
      hint: 'pass how many releases to keep besides current, e.g. --keep 2; previous is always kept, so --keep 0 leaves current and previous',
      details: { flag: '--keep', value: v },
    });
  }
  return n;
}

/** A restore loses data: without a terminal to ask on, only --yes lets it go ahead (checked before any I/O). */
function needConsent(yes: boolean, what: string): void {
  if (yes || process.stdin.isTTY) return;
  throw new CutoverError('E_USAGE', `${what} replaces the database and needs confirmation, and stdin is not a terminal`, {
    hint: 'pass --yes to confirm; nothing was changed',
  });
}

/** Ask the operator to type the app's name. Anything else: E_USAGE, nothing changed. */
async function confirm(app: string, what: string): Promise<void> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${what}\nType the app's name (${app}) to go on: `);
    if (answer.trim() !== app) throw new CutoverError('E_USAGE', 'not confirmed', { hint: 'nothing was changed' });
  } finally {
    rl.close();
  }
}

/** Tables are ours line by line; only what a line holds may come from outside. */
function escapeTable(text: string): string {
  return text.split('\n').map(escapeControls).join('\n');
}

function describeInterrupted(i: Interrupted): string {
  const route = `${i.from ? `v${i.from}` : '(none)'} -> ${i.to ? `v${i.to}` : '-'}`;
  const next = i.next === 'undo' ? `undo it${i.from ? ` (back to v${i.from})` : ''}` : 'complete it';
  return `${i.op} ${route} (pid ${i.pid}, ${i.startedAt}) stopped at step ${i.position}/${i.of} (${i.step ?? 'none'}); the next update, rollback or gc will ${next}`;
}

function describeAction(a: 'install' | 'switch' | 'noop'): string {
  if (a === 'install') return 'download, verify, extract into releases/, switch current';
  if (a === 'switch') return 'already retained: switch current only';
  return 'nothing (already current)';
}
