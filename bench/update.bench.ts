/**
 * `npm run bench`: how long `update` takes, and how much memory it needs, against the shell
 * pipeline an operator would otherwise run, on release archives of realistic shape.
 *
 * One HTTPS release server (test CA) and one mock Sigstore on loopback, in this process. Each
 * round, for each fixture, in rotating order, every contestant installs the release into a fresh
 * root, timed from spawn to exit with peak RSS from GNU time:
 *
 *   cutover       node src/cli/run.ts update --version X       (TypeScript sources)
 *   cutover-dist  bin/cutover update --version X             (tsc build through the shipped launcher and its Node flags)
 *   cutover-exe   cutover-linux-x64 update --version X       (the single executable, npm run build:exe)
 *   baseline      curl -o, sha256sum -c, mkdir + tar xzf, ln -s + mv -T
 *
 * cutover does more than the baseline: it fetches the index and the bundle, verifies the
 * signature, checks every archive entry, and makes the tree durable (`sync -f`) before the
 * swap. The baseline leaves its tree in the page cache; `sync -f` of it right after it exits is
 * measured separately (untimed for the ratio) and reported as "baseline + flush". Before every
 * timed run the previous trees are removed and the whole system is `sync`ed, so no run pays for
 * another's writeback.
 *
 * Then `nm` again over a link paced to 20 MB/s (the server writes no faster; the baseline's curl
 * also gets --limit-rate): there the download dominates, and staging while downloading shows.
 *
 * Options: --quick (1 round each), --rounds N (default 5), --big-rounds N (default 3),
 * --link-rounds N (default 3; 0 skips), --link-rate BYTES_PER_S (default 20000000),
 * --tmpfs (install roots on a tmpfs in a private mount namespace: no disk noise; needs root),
 * --only nm|big, --no-dist, --no-exe, --profile (also one --cpu-prof run of cutover per fixture),
 * --working-tree (run src/ as it is on disk; default: a `git archive` snapshot of HEAD).
 * Env: BENCH_ROUNDS, BENCH_BIG_ROUNDS. Results: .bench-work/results.json.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { identityFor, ISSUER, IDENTITY_TEMPLATE, World } from '../test/helpers/world.ts';
import { ensureFixture, RECIPES, type Fixture } from './fixtures.ts';
import { lineAt, measure, timed, type Measured } from './measure.ts';
import { summariseProfile } from './profile.ts';
import { max, mb, median, mib, min, secs, table } from './stats.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const WORK = path.join(REPO, '.bench-work');
const RUN = path.join(WORK, 'run');
const PKG = path.join(WORK, 'pkg');
const DIST = path.join(PKG, 'dist');
const NODE = process.execPath;

const TARGET_RATIO = 1.0;
/** Over a slow link the download dominates: staging while downloading should hide the rest. */
const TARGET_LINK_RATIO = 0.7;
const DEFAULT_LINK_RATE = 20_000_000;
const TARGET_RSS_KIB = 96 * 1024;
/** "Not growing with the artifact's size": the 1 GB median may exceed the small one by this much. */
const RSS_GROWTH_SLACK_KIB = 8 * 1024;

type ContestantId = 'cutover' | 'cutover-dist' | 'cutover-exe' | 'baseline';

interface Sample {
  fixture: string;
  contestant: ContestantId;
  round: number;
  /** Position within the round (0 = ran first). */
  order: number;
  wallMs: number;
  peakRssKiB: number;
  /** Phase → ms, from stderr timestamps. */
  phases: Record<string, number>;
  /** baseline only: `sync -f` of its tree right after it exited. */
  flushMs?: number;
  /** cutover only: `verify` of the release it just installed (untimed for the ratio). */
  verifyMs?: number;
  verifyRssKiB?: number;
}

interface Options {
  rounds: number;
  bigRounds: number;
  only: 'nm' | 'big' | undefined;
  dist: boolean;
  exe: boolean;
  profile: boolean;
  /** Benchmark src/ as it is on disk instead of a snapshot of HEAD. */
  workingTree: boolean;
  /** Rounds of `nm` over a paced link (0: skip), and its rate in bytes per second. */
  linkRounds: number;
  linkRate: number;
  /** Install roots on a tmpfs (in a private mount namespace): the pipelines' CPU cost without the disk's noise. */
  tmpfs: boolean;
}

const log = (s: string): void => {
  process.stderr.write(`bench: ${s}\n`);
};

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'big-rounds': { type: 'string' },
      only: { type: 'string' },
      'no-dist': { type: 'boolean', default: false },
      'no-exe': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'working-tree': { type: 'boolean', default: false },
      'link-rounds': { type: 'string' },
      'link-rate': { type: 'string' },
      tmpfs: { type: 'boolean', default: false },
    },
  });
  const int = (v: string | undefined, fallback: number): number => {
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${v}`);
    return n;
  };
  const quick = values.quick === true;
  const only = values.only;
  if (only !== undefined && only !== 'nm' && only !== 'big') throw new Error('--only takes nm or big');
  return {
    rounds: int(values.rounds ?? process.env.BENCH_ROUNDS, quick ? 1 : 5),
    bigRounds: int(values['big-rounds'] ?? process.env.BENCH_BIG_ROUNDS, quick ? 1 : 3),
    only,
    dist: values['no-dist'] !== true,
    exe: values['no-exe'] !== true,
    profile: values.profile === true,
    workingTree: values['working-tree'] === true,
    linkRounds: values['link-rounds'] === '0' ? 0 : int(values['link-rounds'] ?? process.env.BENCH_LINK_ROUNDS, quick ? 1 : 3),
    linkRate: int(values['link-rate'], DEFAULT_LINK_RATE),
    tmpfs: values.tmpfs === true,
  };
}

// ---- setup ----

/**
 * The cutover sources to run: by default a snapshot of HEAD (`git archive`, read-only) under
 * .bench-work/, so edits in progress elsewhere in the repo cannot break or skew a run; it
 * resolves node_modules from the repo by walking up.
 */
function sourceTree(workingTree: boolean): { dir: string; label: string } {
  if (workingTree) return { dir: REPO, label: 'working tree' };
  const git = (args: string[]): string =>
    execFileSync('git', args, { cwd: REPO, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' } })
      .toString()
      .trim();
  const commit = git(['rev-parse', 'HEAD']);
  const dir = path.join(WORK, 'src', commit);
  if (!existsSync(path.join(dir, 'bin', 'cutover'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    execFileSync(
      'bash',
      ['-c', 'set -euo pipefail; git archive "$1" src bin scripts package.json tsconfig.json tsconfig.build.json | tar -x -C "$2"', 'snap', commit, dir],
      {
        cwd: REPO,
        env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' },
      },
    );
  }
  return { dir, label: `HEAD ${commit.slice(0, 10)} (git archive snapshot)` };
}

/**
 * tsc -p tsconfig.build.json into a package layout under .bench-work/pkg (not dist/: others run
 * the repo meanwhile): pkg/bin/cutover (the launcher, with its Node flags), pkg/dist,
 * pkg/node_modules -> the repo's. Returns the launcher: cutover-dist runs exactly what ships.
 */
function buildDist(srcDir: string): string | undefined {
  rmSync(PKG, { recursive: true, force: true });
  mkdirSync(path.join(PKG, 'bin'), { recursive: true });
  const launcher = path.join(PKG, 'bin', 'cutover');
  copyFileSync(path.join(srcDir, 'bin', 'cutover'), launcher);
  chmodSync(launcher, 0o755);
  symlinkSync(path.join(REPO, 'node_modules'), path.join(PKG, 'node_modules'));
  try {
    execFileSync(path.join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', path.join(srcDir, 'tsconfig.build.json'), '--outDir', DIST], {
      cwd: srcDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const out = (e as { stdout?: Buffer }).stdout?.toString().trim();
    log(`tsc -p tsconfig.build.json reported errors (emitting anyway):\n${out ?? String(e)}`);
  }
  return existsSync(path.join(DIST, 'cli', 'run.js')) ? launcher : undefined;
}

/** The single executable built from `srcDir` (scripts/build-exe.ts) under pkg/exe, or undefined. */
function buildExe(srcDir: string): string | undefined {
  const out = path.join(PKG, 'exe');
  try {
    execFileSync(NODE, ['--disable-warning=ExperimentalWarning', path.join(srcDir, 'scripts', 'build-exe.ts'), '--arch', 'x64', '--out', out], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    log(`build-exe failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e)}`);
    return undefined;
  }
  return path.join(out, 'cutover-linux-x64');
}

async function publish(w: World, fx: Fixture): Promise<string> {
  const name = `demo-${fx.version}.tar.gz`;
  const bundle = await w.sigstore.sign(fx.archive, { identity: identityFor(fx.version), issuer: ISSUER });
  w.server.files.set(`demo/${name}`, { file: fx.archive });
  w.server.files.set(`demo/${name}.sigstore.json`, Buffer.from(JSON.stringify(bundle)));
  w.releases.push({ version: fx.version, artifact: name, bundle: `${name}.sigstore.json`, sha256: fx.sha256, size: fx.size });
  w.publishIndex();
  return w.server.url(`demo/${name}`);
}

function writeConfig(w: World, caFile: string, id: string): { config: string; root: string } {
  const root = path.join(RUN, id);
  const config = path.join(RUN, `${id}.toml`);
  writeFileSync(
    config,
    `app = "demo"
root = "${root}"
keep = 2

[source]
index = "${w.server.url('demo/index.json')}"
ca = "${caFile}"
timeout = "10m"
idle_timeout = "30s"

[trust]
identity = "${IDENTITY_TEMPLATE}"
issuer = "${ISSUER}"
trusted_root = "${w.trustedRoot}"
`,
  );
  return { config, root };
}

// ---- contestants ----

interface Contestant {
  id: ContestantId;
  /** `link`: bytes per second the server is paced to (the baseline's curl gets --limit-rate too). */
  run(fx: Fixture, url: string, link?: number): Promise<Omit<Sample, 'fixture' | 'contestant' | 'round' | 'order'>>;
}

function cutoverContestant(id: 'cutover' | 'cutover-dist' | 'cutover-exe', cmd: string, entry: string[], w: World, caFile: string): Contestant {
  const { config, root } = writeConfig(w, caFile, id);
  return {
    id,
    async run(fx) {
      await fresh(root);
      const m = await measure(cmd, [...entry, '--config', config, '--json', 'update', '--version', fx.version], {
        env: { ...process.env, CUTOVER_PROG: 'demo' },
        rssFile: path.join(RUN, `${id}.rss`),
      });
      checkCutover(id, m, fx, root);
      // Re-checking every installed file against the install record: what `app verify` costs.
      const v = await measure(cmd, [...entry, '--config', config, 'verify'], {
        env: { ...process.env, CUTOVER_PROG: 'demo' },
        rssFile: path.join(RUN, `${id}.verify.rss`),
      });
      if (v.code !== 0) throw new Error(`${id}: verify after the update exited ${v.code}: ${v.stderr.slice(-500)}`);
      return { wallMs: m.wallMs, peakRssKiB: m.peakRssKiB, phases: cutoverPhases(m), verifyMs: v.wallMs, verifyRssKiB: v.peakRssKiB };
    },
  };
}

function checkCutover(id: string, m: Measured, fx: Fixture, root: string): void {
  if (m.code !== 0) throw new Error(`${id} update failed (exit ${m.code}):\n${m.stderr}`);
  const r = JSON.parse(m.stdout) as { ok: boolean; extracted?: { files: number; bytes: number } };
  if (!r.ok || r.extracted?.files !== fx.files || r.extracted.bytes !== fx.bytes) {
    throw new Error(`${id} installed something unexpected: ${m.stdout}`);
  }
  const link = readlinkSync(path.join(root, 'current'));
  if (link !== `releases/v${fx.version}`) throw new Error(`${id}: current -> ${link}`);
}

/**
 * boot (spawn to the first line) | index | each step's own duration from the journal (the
 * `--json` result's `steps`, the same figures history.jsonl keeps) | finish (the rest: the
 * gaps between steps, the history line, exit).
 */
function cutoverPhases(m: Measured): Record<string, number> {
  const exit = m.startedAt + m.wallMs;
  const fetching = lineAt(m.lines, 'Fetching release index');
  const firstStep = lineAt(m.lines, 'Fetching the signature');
  if (fetching === undefined || firstStep === undefined) throw new Error(`cannot tell cutover's phases apart:\n${m.stderr}`);
  const steps = (JSON.parse(m.stdout) as { steps: Array<{ kind: string; ms: number }> }).steps;
  const phases: Record<string, number> = { boot: fetching - m.startedAt, index: firstStep - fetching };
  for (const s of steps) phases[s.kind] = (phases[s.kind] ?? 0) + s.ms;
  phases.finish = exit - firstStep - steps.reduce((a, s) => a + s.ms, 0);
  return phases;
}

const BASELINE = `set -euo pipefail
url=$1 ca=$2 sha=$3 root=$4 version=$5 rate=\${6:-}
t() { echo "T $1 $EPOCHREALTIME" >&2; }
file=$root/demo-$version.tar.gz
staging=$root/releases/v$version
t download; curl --cacert "$ca" -fsS \${rate:+--limit-rate "$rate"} -o "$file" "$url"
t sha256; echo "$sha  $file" | sha256sum -c --status -
t extract; mkdir "$staging"; tar xzf "$file" -C "$staging"
t swap; ln -s "releases/v$version" "$root/current.new"; mv -T "$root/current.new" "$root/current"; rm -f "$file"
t end
`;

function baselineContestant(caFile: string): Contestant {
  const root = path.join(RUN, 'baseline');
  return {
    id: 'baseline',
    async run(fx, url, link) {
      await fresh(root);
      mkdirSync(path.join(root, 'releases'), { recursive: true });
      const m = await measure('bash', ['-c', BASELINE, 'baseline', url, caFile, fx.sha256, root, fx.version, link ? String(link) : ''], {
        rssFile: path.join(RUN, 'baseline.rss'),
      });
      if (m.code !== 0) throw new Error(`baseline failed (exit ${m.code}):\n${m.stderr}`);
      if (!existsSync(path.join(root, 'current', 'release.json'))) throw new Error('baseline installed nothing');
      const flushMs = await timed('sync', ['-f', root]);
      return { wallMs: m.wallMs, peakRssKiB: m.peakRssKiB, phases: baselinePhases(m), flushMs };
    },
  };
}

function baselinePhases(m: Measured): Record<string, number> {
  const stamps = new Map<string, number>();
  for (const l of m.lines) {
    const r = /^T (\S+) (\S+)$/.exec(l.text);
    if (r) stamps.set(r[1] as string, Number(r[2]) * 1000);
  }
  const order = ['download', 'sha256', 'extract', 'swap', 'end'];
  const t = [m.startedAt, ...order.map((k) => stamps.get(k)), m.startedAt + m.wallMs];
  if (t.some((x) => x === undefined)) throw new Error(`cannot tell the baseline's phases apart:\n${m.stderr}`);
  const names = ['boot', 'download', 'sha256', 'extract', 'swap', 'exit'];
  return Object.fromEntries(names.map((n, i) => [n, (t[i + 1] as number) - (t[i] as number)]));
}

/** Remove a previous install and flush everything, so the timed run starts from a clean page cache. */
async function fresh(root: string): Promise<void> {
  rmSync(root, { recursive: true, force: true });
  await timed('sync', []);
}

// ---- runs ----

async function runRounds(fx: Fixture, url: string, contestants: Contestant[], rounds: number, link?: { name: string; rate: number }): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = contestants.map((_, i) => contestants[(i + round) % contestants.length] as Contestant);
    for (const [pos, c] of order.entries()) {
      const s = await c.run(fx, url, link?.rate);
      samples.push({ fixture: link?.name ?? fx.name, contestant: c.id, round, order: pos, ...s });
      log(`${link?.name ?? fx.name} round ${round + 1}/${rounds} ${c.id.padEnd(12)} ${secs(s.wallMs)}  ${mib(s.peakRssKiB)}`);
    }
  }
  for (const c of contestants) rmSync(path.join(RUN, c.id), { recursive: true, force: true });
  return samples;
}

/** Peak RSS of a run that loads everything and does nothing heavy (`status`): the floor. */
async function rssFloor(cmd: string, entry: string[], config: string, id: string): Promise<number> {
  const xs: number[] = [];
  const walls: number[] = [];
  for (let i = 0; i < 5; i++) {
    const m = await measure(cmd, [...entry, '--config', config, 'status'], {
      env: { ...process.env, CUTOVER_PROG: 'demo' },
      rssFile: path.join(RUN, `${id}.floor.rss`),
    });
    xs.push(m.peakRssKiB);
    walls.push(m.wallMs);
  }
  statusWallMs[id] = median(walls);
  return median(xs);
}

/** Median wall time of `status` (start-up, config, state read; nothing else) by floor id. */
const statusWallMs: Record<string, number> = {};

/** The V8 flags bin/cutover passes to Node for dist/ (e.g. --max-semi-space-size=1 --no-turbofan). */
function launcherFlags(srcDir: string): string[] {
  const text = readFileSync(path.join(srcDir, 'bin', 'cutover'), 'utf8');
  const m = /exec "\$node" (.*?) "\$base\/dist\/cli\/run\.js"/.exec(text);
  return m?.[1]?.split(/\s+/).filter(Boolean) ?? [];
}

async function profileRun(fx: Fixture, entry: string[], config: string, root: string): Promise<string> {
  const dir = path.join(WORK, 'prof', fx.name);
  rmSync(dir, { recursive: true, force: true });
  await fresh(root);
  const m = await measure(NODE, ['--cpu-prof', '--cpu-prof-dir', dir, ...entry, '--config', config, 'update', '--version', fx.version], {
    env: { ...process.env, CUTOVER_PROG: 'demo' },
    rssFile: path.join(RUN, 'profile.rss'),
  });
  if (m.code !== 0) throw new Error(`profiled update failed:\n${m.stderr}`);
  rmSync(root, { recursive: true, force: true });
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  return summariseProfile(path.join(dir, file), fx.name, m.wallMs);
}

// ---- report ----

interface FixtureSummary {
  fixture: string;
  files: number;
  unpackedBytes: number;
  archiveBytes: number;
  rounds: number;
  medianWallMs: Record<string, number>;
  medianRatio: Record<string, number>;
  ratioOfMedians: Record<string, number>;
  peakRssMedianKiB: Record<string, number>;
  peakRssMaxKiB: Record<string, number>;
  medianPhasesMs: Record<string, Record<string, number>>;
  baselineFlushMedianMs: number;
}

function summarise(fx: Fixture, samples: Sample[], ids: ContestantId[], rounds: number, name = fx.name): FixtureSummary {
  const of = (id: ContestantId): Sample[] => samples.filter((s) => s.contestant === id);
  const base = of('baseline');
  const byRound = new Map(base.map((s) => [s.round, s.wallMs]));
  const pick = <T>(f: (id: ContestantId) => T): Record<string, T> => Object.fromEntries(ids.map((id) => [id, f(id)]));
  return {
    fixture: name,
    files: fx.files,
    unpackedBytes: fx.bytes,
    archiveBytes: fx.size,
    rounds,
    medianWallMs: pick((id) => median(of(id).map((s) => s.wallMs))),
    medianRatio: pick((id) => median(of(id).map((s) => s.wallMs / (byRound.get(s.round) ?? NaN)))),
    ratioOfMedians: pick((id) => median(of(id).map((s) => s.wallMs)) / median(base.map((s) => s.wallMs))),
    peakRssMedianKiB: pick((id) => median(of(id).map((s) => s.peakRssKiB))),
    peakRssMaxKiB: pick((id) => max(of(id).map((s) => s.peakRssKiB))),
    medianPhasesMs: pick((id) => {
      const ss = of(id);
      const names = Object.keys(ss[0]?.phases ?? {});
      return Object.fromEntries(names.map((n) => [n, median(ss.map((s) => s.phases[n] ?? NaN))]));
    }),
    baselineFlushMedianMs: median(base.map((s) => s.flushMs ?? NaN)),
  };
}

function render(summaries: FixtureSummary[], samples: Sample[], floors: Record<string, number>): string {
  const out: string[] = [];
  for (const s of summaries) {
    const ids = Object.keys(s.medianWallMs) as ContestantId[];
    const walls = (id: ContestantId): number[] => samples.filter((x) => x.fixture === s.fixture && x.contestant === id).map((x) => x.wallMs);
    out.push(
      `\n${s.fixture}: ${s.files} files, ${mb(s.unpackedBytes)} unpacked, ${mb(s.archiveBytes)} archive, ${s.rounds} rounds`,
      table(
        ['', 'median wall', 'min..max', 'ratio vs baseline', 'peak RSS median', 'peak RSS max'],
        ids.map((id) => [
          id,
          secs(s.medianWallMs[id] ?? NaN),
          `${secs(min(walls(id)))}..${secs(max(walls(id)))}`,
          id === 'baseline' ? '1' : `${(s.medianRatio[id] ?? NaN).toFixed(2)} (of medians ${(s.ratioOfMedians[id] ?? NaN).toFixed(2)})`,
          mib(s.peakRssMedianKiB[id] ?? NaN),
          mib(s.peakRssMaxKiB[id] ?? NaN),
        ]),
      ),
      `baseline + its deferred flush (sync -f after it exits): ${secs((s.medianWallMs.baseline ?? NaN) + s.baselineFlushMedianMs)} ` +
        `(flush ${secs(s.baselineFlushMedianMs)}); cutover / that: ${((s.medianWallMs.cutover ?? NaN) / ((s.medianWallMs.baseline ?? NaN) + s.baselineFlushMedianMs)).toFixed(2)}`,
      `\`verify\` of the installed release (not in the ratio): ${ids
        .filter((id) => id !== 'baseline')
        .map((id) => {
          const own = samples.filter((x) => x.fixture === s.fixture && x.contestant === id);
          return `${id} ${secs(median(own.map((x) => x.verifyMs ?? NaN)))} (peak RSS ${mib(median(own.map((x) => x.verifyRssKiB ?? NaN)))})`;
        })
        .join(', ')}`,
      'median phases:',
      ...ids.map(
        (id) =>
          `  ${id.padEnd(12)} ${Object.entries(s.medianPhasesMs[id] ?? {})
            .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)}`)
            .join(' | ')}`,
      ),
    );
  }
  out.push(
    `\nRSS floor (\`status\`: all modules loaded, no work): ${Object.entries(floors)
      .map(([k, v]) => `${k} ${mib(v)}`)
      .join(', ')}`,
    `\`status\` median wall (start-up): ${Object.entries(statusWallMs)
      .map(([k, v]) => `${k.replace(/^floor-/, '')} ${secs(v)}`)
      .join(', ')}`,
  );
  out.push('\ntargets');
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
  for (const s of summaries) {
    for (const id of Object.keys(s.medianRatio).filter((k) => k !== 'baseline')) {
      const r = s.medianRatio[id] ?? NaN;
      const rss = s.peakRssMaxKiB[id] ?? NaN;
      const target = s.fixture.includes('@') ? TARGET_LINK_RATIO : TARGET_RATIO;
      out.push(`  ${verdict(r <= target)}  ${s.fixture} ${id}: median wall ratio ${r.toFixed(2)} (target <= ${target.toFixed(1)})`);
      out.push(`  ${verdict(rss <= TARGET_RSS_KIB)}  ${s.fixture} ${id}: peak RSS max ${mib(rss)} (target <= ${mib(TARGET_RSS_KIB)})`);
    }
  }
  const small = summaries.find((s) => s.fixture === 'nm');
  const big = summaries.find((s) => s.fixture === 'big');
  if (small && big) {
    for (const id of Object.keys(big.peakRssMedianKiB).filter((k) => k !== 'baseline')) {
      const growth = (big.peakRssMedianKiB[id] ?? NaN) - (small.peakRssMedianKiB[id] ?? NaN);
      out.push(
        `  ${verdict(growth <= RSS_GROWTH_SLACK_KIB)}  ${id}: peak RSS growth nm -> big ${mib(growth)} ` +
          `(target: not growing, <= ${mib(RSS_GROWTH_SLACK_KIB)} slack)`,
      );
    }
  }
  return out.join('\n');
}

// ---- main ----

/**
 * --tmpfs: run this whole benchmark again inside a private mount namespace (unshare -m) with a
 * tmpfs over .bench-work/run, where every install root lives; the host sees no mount.
 */
function tmpfsNamespace(): boolean {
  if (process.env.BENCH_TMPFS_NS === '1') {
    mkdirSync(RUN, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8g,mode=0755', 'cutover-bench', RUN]);
    return false;
  }
  execFileSync('unshare', ['-m', '--propagation', 'private', '--', NODE, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_TMPFS_NS: '1' },
  });
  return true;
}

async function main(): Promise<void> {
  const opts = readOptions();
  if (opts.tmpfs && tmpfsNamespace()) return;
  mkdirSync(RUN, { recursive: true });
  const recipes = opts.only ? [RECIPES[opts.only]] : [RECIPES.nm, RECIPES.big];
  const fixtures: Fixture[] = [];
  for (const r of recipes) fixtures.push(await ensureFixture(r, WORK, REPO, log));
  const source = sourceTree(opts.workingTree);
  log(`benchmarking cutover from ${source.label}`);
  const distEntry = opts.dist ? buildDist(source.dir) : undefined;
  if (opts.dist && !distEntry) log('no dist/cli/run.js after tsc; skipping cutover-dist');
  const exe = opts.exe ? buildExe(source.dir) : undefined;

  const w = await World.create();
  try {
    const caFile = path.join(w.dir, 'ca', 'ca.pem');
    const urls = new Map<string, string>();
    for (const fx of fixtures) urls.set(fx.name, await publish(w, fx));
    const tsEntry = ['--disable-warning=ExperimentalWarning', path.join(source.dir, 'src', 'cli', 'run.ts')];
    const contestants: Contestant[] = [cutoverContestant('cutover', NODE, tsEntry, w, caFile)];
    if (distEntry) contestants.push(cutoverContestant('cutover-dist', distEntry, [], w, caFile));
    if (exe) contestants.push(cutoverContestant('cutover-exe', exe, [], w, caFile));
    contestants.push(baselineContestant(caFile));
    const ids = contestants.map((c) => c.id);

    const samples: Sample[] = [];
    const summaries: FixtureSummary[] = [];
    for (const fx of fixtures) {
      const rounds = fx.name === 'big' ? opts.bigRounds : opts.rounds;
      log(`${fx.name}: ${fx.files} files, ${mb(fx.bytes)} unpacked, ${mb(fx.size)} archive; ${rounds} rounds of ${ids.join(', ')}`);
      const got = await runRounds(fx, urls.get(fx.name) as string, contestants, rounds);
      samples.push(...got);
      summaries.push(summarise(fx, got, ids, rounds));
    }
    // The same nm release over a link of linkRate: the server paces the body (both contestants
    // download the same bytes from it), and the baseline's curl also gets --limit-rate.
    const nm = fixtures.find((f) => f.name === 'nm');
    if (nm && opts.linkRounds > 0) {
      const name = `nm@${Math.round(opts.linkRate / 1e6)}MB/s`;
      const artifact = `demo/demo-${nm.version}.tar.gz`;
      w.server.faults.set(artifact, { kind: 'rate', bytesPerSecond: opts.linkRate });
      // What ships (the launcher and dist/) when it was built, else the TypeScript sources.
      const linkContestants = contestants.filter((c) => c.id !== 'cutover' || !contestants.some((x) => x.id === 'cutover-dist'));
      log(`${name}: ${opts.linkRounds} rounds of ${linkContestants.map((c) => c.id).join(', ')}`);
      try {
        const got = await runRounds(nm, urls.get('nm') as string, linkContestants, opts.linkRounds, { name, rate: opts.linkRate });
        samples.push(...got);
        summaries.push(
          summarise(
            nm,
            got,
            linkContestants.map((c) => c.id),
            opts.linkRounds,
            name,
          ),
        );
      } finally {
        w.server.faults.delete(artifact);
      }
    }

    const floors: Record<string, number> = {};
    floors.cutover = await rssFloor(NODE, tsEntry, writeConfig(w, caFile, 'floor-ts').config, 'floor-ts');
    if (distEntry) floors['cutover-dist'] = await rssFloor(distEntry, [], writeConfig(w, caFile, 'floor-dist').config, 'floor-dist');
    if (exe) floors['cutover-exe'] = await rssFloor(exe, [], writeConfig(w, caFile, 'floor-exe').config, 'floor-exe');

    const profiles: string[] = [];
    if (opts.profile) {
      const { config, root } = writeConfig(w, caFile, 'profile');
      // What ships, with the launcher's own V8 flags (--cpu-prof cannot pass through the launcher).
      const entry = distEntry ? [...launcherFlags(source.dir), path.join(DIST, 'cli', 'run.js')] : tsEntry;
      for (const fx of fixtures) profiles.push(await profileRun(fx, entry, config, root));
    }

    const report = render(summaries, samples, floors);
    process.stdout.write(
      `\ncutover update benchmark: ${source.label}; install roots on ${opts.tmpfs ? 'tmpfs' : 'disk'}; ${os.cpus().length} CPUs, Node ${process.version}, Linux ${os.release()}${report}\n`,
    );
    if (profiles.length) process.stdout.write(`\n${profiles.join('\n\n')}\n`);
    process.stdout.write(
      '\nnote: cutover also fetches the index and bundle, verifies the Sigstore signature, checks every entry and\n' +
        'syncs the tree (sync -f) before the swap; the baseline does none of that.\n',
    );
    const results = {
      at: new Date().toISOString(),
      source: source.label,
      machine: machine(),
      options: opts,
      fixtures,
      floors,
      statusWallMs,
      summaries,
      samples,
    };
    writeFileSync(path.join(WORK, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    log(`results written to ${path.relative(REPO, path.join(WORK, 'results.json'))}`);
  } finally {
    await w.close();
    // A tmpfs goes with its namespace; its mount point cannot be removed from inside.
    if (!opts.tmpfs) rmSync(RUN, { recursive: true, force: true });
  }
}

function machine(): Record<string, unknown> {
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memBytes: os.totalmem(), node: process.version, kernel: os.release() };
}

await main();
