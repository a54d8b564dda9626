/**
 * The single executable (`npm run build:exe`) on a machine with no Node: it is built into a
 * temporary directory, then every run happens inside a private mount namespace where each Node
 * on the PATH is /dev/null and the checkout (node_modules, src, the pinned Node) is an empty
 * tmpfs. In there it runs a real signed update, a second one, status and rollback against the
 * test HTTPS server and Sigstore, takes the app's name from the link it is invoked by, ignores
 * NODE_OPTIONS, and under root drops what Node reads at startup (NODE_EXTRA_CA_CERTS).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildExecutable, REPO, runCommand, type RunResult } from '../helpers/cli.ts';
import { lastLine, World } from '../helpers/world.ts';

const root = process.getuid?.() === 0;
const unshare = spawnSync('unshare', ['--version']).status === 0;
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const skip = !root ? 'needs root (mount namespace)' : !unshare ? 'needs unshare (util-linux)' : false;

describe('the single executable, with every Node hidden', { skip }, () => {
  let w: World;
  let bin: string;
  let exe: string;

  /** Run `argv` in a mount namespace with no Node and no checkout. */
  function hidden(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    // The checkout goes first (node_modules/.bin/node is in it); then every node the PATH finds,
    // and the one running this test wherever it lives, becomes /dev/null.
    const script = [
      'set -e',
      'mount --make-rprivate /',
      `mount -t tmpfs -o size=1m none '${REPO}'`,
      `for n in $(which -a node nodejs) '${process.execPath}'; do if [ -e "$n" ]; then mount --bind /dev/null "$n"; fi; done`,
      'exec "$@"',
    ].join('\n');
    return runCommand('unshare', ['-m', 'sh', '-c', script, 'sh', ...argv], { env: { PATH: SYSTEM_PATH, HOME: w.dir, ...env } });
  }

  before(async () => {
    bin = mkdtempSync(path.join(tmpdir(), 'cutover-exe-'));
    exe = buildExecutable('x64', bin);
    // As a vendor installs it: /usr/local/bin/demo -> the executable.
    symlinkSync(exe, path.join(bin, 'demo'));
    w = await World.create();
    w.runner = (args, env) => hidden([path.join(bin, 'demo'), ...args], env);
    await w.publish('1.0.0');
  });
  after(async () => {
    await w?.close();
    if (bin) rmSync(bin, { recursive: true, force: true });
  });

  test('inside the namespace there is no Node and no checkout', async () => {
    const r = await hidden([
      'sh',
      '-c',
      `command -v node; command -v nodejs; ls -A '${REPO}'; for n in $(which -a node nodejs); do test -s "$n" && echo "$n"; done; true`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '', 'nothing runnable is left');
  });

  test("--version names the app by the link and prints cutover's version from package.json", async () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = await hidden([path.join(bin, 'demo'), '--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `demo: cutover ${pkg.version} (Node ${process.version})`);
  });

  test('a signed update, a second one, status and rollback', async () => {
    let r = await w.run(['update', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(lastLine(r.stdout)) as { to: string }).to, '1.0.0');
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');

    await w.publish('1.1.0', { files: { 'bin/demo': '#!/bin/sh\necho demo 1.1.0\n' } });
    r = await w.run(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Verifying Sigstore signature/);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.1.0');
    assert.equal(readFileSync(path.join(w.root, 'current', 'bin', 'demo'), 'utf8'), '#!/bin/sh\necho demo 1.1.0\n');

    r = await w.run(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(lastLine(r.stdout)) as { current: string | null };
    assert.equal(status.current, '1.1.0');

    r = await w.run(['rollback']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');

    r = await w.run(['verify', '--all']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('NODE_OPTIONS is ignored: the executable is built with execArgvExtension "none"', async () => {
    // Plain node would fail to start on this --require.
    const r = await hidden([path.join(bin, 'demo'), '--version'], { NODE_OPTIONS: `--require=${path.join(w.dir, 'nonexistent.js')}` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^demo: cutover /);
  });

  test('under root, NODE_EXTRA_CA_CERTS is dropped before any connection: the executable runs again without it', async () => {
    // A config that names no CA: the test server is trusted only if the extra CA file is.
    const noCa = path.join(w.dir, 'no-ca.toml');
    writeFileSync(noCa, readFileSync(w.configFile, 'utf8').replace(/^ca = .*$/m, ''));
    const r = await hidden([path.join(bin, 'demo'), '--config', noCa, 'update', '--dry-run'], { NODE_EXTRA_CA_CERTS: w.caFile, TMPDIR: w.dir });
    assert.notEqual(r.code, 0, 'the test CA must not be trusted');
    assert.match(r.stderr, /^demo: E_NET_TLS: .*not trusted/m);
    assert.equal(statSync(w.caFile).isFile(), true);
  });
});
