import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, type RunResult } from '../helpers/cli.ts';
import { lastLine, World } from '../helpers/world.ts';

const isRoot = process.getuid?.() === 0;

/**
 * A caller who can set root's environment (`sudo -E`, a wrapper script, a unit's Environment=)
 * must not choose what root runs or trusts. The launcher is run as shipped (a package layout:
 * bin/cutover, src/, node_modules/) with a hostile PATH whose every command would leave a mark,
 * a hostile CUTOVER_NODE, a NODE_OPTIONS preload, and TLS overrides.
 */
describe('the environment cannot steer root cutover', { skip: isRoot ? false : 'needs root: the environment is scrubbed only under root' }, () => {
  let w: World;
  let evil: string;
  let marks: string;
  let launcher: string;
  const tools = ['flock', 'sync', 'systemctl', 'systemd-notify', 'getent', 'readlink', 'dirname', 'basename', 'id', 'node', 'env', 'sh'];

  // Asynchronous: the release server runs in this process.
  const runLauncher = (args: string[], env: NodeJS.ProcessEnv, cmd: string[] = [launcher]): Promise<RunResult> =>
    new Promise((resolve) => {
      const child = spawn(cmd[0] as string, [...cmd.slice(1), '--config', w.configFile, ...args], {
        env: { HOME: '/root', CUTOVER_PROG: 'demo', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  const hostile = (): NodeJS.ProcessEnv => ({
    PATH: `${evil}:/usr/bin:/bin`,
    CUTOVER_NODE: path.join(evil, 'node'),
    NODE_OPTIONS: `--require ${path.join(evil, 'preload.cjs')}`,
    LD_PRELOAD: path.join(evil, 'nonexistent.so'),
  });
  const marked = (): string => (existsSync(marks) ? readFileSync(marks, 'utf8') : '');

  before(async () => {
    w = await World.create();
    evil = path.join(w.dir, 'evil');
    marks = path.join(w.dir, 'marks.log');
    mkdirSync(evil);
    for (const t of tools) {
      const f = path.join(evil, t);
      // Each one "succeeds": a fake flock would grant any lock, a fake systemctl any restart.
      writeFileSync(f, `#!/bin/sh\necho "${t} $*" >> ${marks}\nexit 0\n`);
      chmodSync(f, 0o755);
    }
    writeFileSync(path.join(evil, 'preload.cjs'), `require('fs').appendFileSync(${JSON.stringify(marks)}, 'preload\\n');\n`);
    // The package as shipped: the launcher finds its own Node and its sources beside it.
    const pkg = path.join(w.dir, 'pkg');
    mkdirSync(path.join(pkg, 'bin'), { recursive: true });
    launcher = path.join(pkg, 'bin', 'cutover');
    copyFileSync(path.join(REPO, 'bin', 'cutover'), launcher);
    chmodSync(launcher, 0o755);
    symlinkSync(path.join(REPO, 'src'), path.join(pkg, 'src'));
    symlinkSync(path.join(REPO, 'node_modules'), path.join(pkg, 'node_modules'));
    await w.publish('1.0.0');
    await w.publish('1.1.0');
  });
  after(async () => {
    await w?.close();
  });

  test('the fakes are live: run from that PATH, each one would have left a mark', () => {
    const r = spawnSync('/bin/sh', ['-c', 'flock -n 3 true; sync -f /; readlink -f x'], { env: { PATH: `${evil}:/usr/bin:/bin` }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(marked(), /flock -n 3 true\nsync -f \/\nreadlink -f x\n/);
    writeFileSync(marks, '');
  });

  test("update with a hostile PATH, CUTOVER_NODE, NODE_OPTIONS and LD_PRELOAD: the real commands run, nothing of the caller's", async () => {
    const r = await runLauncher(['update', '--version', '1.0.0'], hostile());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.0.0');
    assert.equal(marked(), '', 'no fake command ran and the preload was not loaded');
    // A second update takes and releases the lock again, syncs, prunes: still nothing.
    const r2 = await runLauncher(['update', '--version', '1.1.0', '--json'], hostile());
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.1.0');
    assert.equal(marked(), '');
  });

  test('NODE_TLS_REJECT_UNAUTHORIZED=0 and NODE_EXTRA_CA_CERTS do not make an untrusted server trusted', async () => {
    // Without source.ca the test server's certificate chains to nothing the system trusts.
    const config = readFileSync(w.configFile, 'utf8');
    const caFile = config.match(/^ca = "(.*)"$/m)?.[1] as string;
    assert.ok(existsSync(caFile));
    writeFileSync(w.configFile, config.replace(/^ca = .*$/m, ''));
    try {
      const r = await runLauncher(['check'], { PATH: '/usr/bin:/bin', NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_EXTRA_CA_CERTS: caFile });
      assert.equal(r.code, 4, r.stderr);
      assert.match(lastLine(r.stderr), /^demo: E_NET_TLS: /);
      // The same through the CLI entry point directly (no launcher): the process scrubs itself.
      const direct = await runLauncher(['check'], { PATH: '/usr/bin:/bin', NODE_TLS_REJECT_UNAUTHORIZED: '0' }, [
        process.execPath,
        '--disable-warning=ExperimentalWarning',
        path.join(REPO, 'src', 'cli', 'run.ts'),
      ]);
      assert.equal(direct.code, 4, direct.stderr);
      assert.match(lastLine(direct.stderr), /^demo: E_NET_TLS: /);
    } finally {
      writeFileSync(w.configFile, config);
    }
  });
});
