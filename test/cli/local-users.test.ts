import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { snapshotTree } from '../helpers/cli.ts';
import { lastLine, World } from '../helpers/world.ts';

/**
 * No local user may block or steer root cutover, and the app's own user can run its release.
 * `nobody` is the other user throughout: it holds locks, owns directories, plants links.
 */
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root: the attacks are made by the real nobody account against a root-owned install';

function asNobody(cmd: string, args: string[]): { child: ReturnType<typeof spawn>; ready: Promise<void>; stop: () => void } {
  // Its own process group, so that stop() also ends what it forked (flock's `sleep`).
  const child = spawn(cmd, args, { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('held')) resolve();
    });
    child.on('close', (code) => reject(new Error(`nobody's ${cmd} exited ${code} before it was ready`)));
  });
  const stop = (): void => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  return { child, ready, stop };
}

const modeOf = (p: string): number => lstatSync(p).mode & 0o7777;

describe('local users cannot block or steer root cutover', { skip }, () => {
  let w: World;
  let victimDir: string;
  let victimFile: string;
  const state = (): string => path.join(w.root, '.cutover');
  const victim = (): string[] => snapshotTree(victimDir).concat(readFileSync(victimFile, 'utf8'));

  before(async () => {
    w = await World.create();
    chmodSync(w.dir, 0o755);
    await w.publish('1.0.0');
    await w.publish('1.1.0');
    await w.publish('1.2.0');
    const r = await w.run(['update', '--version', '1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    victimDir = path.join(w.dir, 'victim');
    mkdirSync(path.join(victimDir, 'etc'), { recursive: true });
    writeFileSync(path.join(victimDir, 'etc', 'important.conf'), 'keep me');
    victimFile = path.join(w.dir, 'victim.txt');
    writeFileSync(victimFile, 'precious');
  });
  after(async () => {
    await w.close();
  });

  test('the lock is 0600: nobody cannot open it, so nobody cannot hold it', () => {
    const lock = path.join(state(), 'lock');
    assert.equal(modeOf(lock), 0o600);
    assert.equal(statSync(lock).uid, 0);
    const r = spawnSync('flock', ['-n', lock, 'true'], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
    assert.notEqual(r.status, 0, 'nobody could take the lock');
    assert.match(r.stderr, /Permission denied/);
    assert.equal(modeOf(state()), 0o755, '.cutover stays readable for status/list');
    assert.equal(modeOf(path.join(state(), 'state.json')), 0o644);
  });

  test('a lock left 0644 by an older release is replaced; nobody holding the old one blocks nothing', async () => {
    const lock = path.join(state(), 'lock');
    chmodSync(lock, 0o644);
    const holder = asNobody('flock', ['-n', lock, 'sh', '-c', 'echo held; exec sleep 600']);
    try {
      await holder.ready;
      const r = await w.run(['update', '--version', '1.1.0']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readlinkSync(path.join(w.root, 'current')), 'releases/v1.1.0');
      assert.equal(modeOf(lock), 0o600, 'a fresh 0600 lock replaced the loose one');
    } finally {
      holder.stop();
    }
  });

  test('a link planted as the trash, staging or downloads directory is removed; its target is untouched', async () => {
    const before = victim();
    for (const name of ['trash', 'staging', 'downloads']) {
      rmSync(path.join(state(), name), { recursive: true, force: true });
      symlinkSync(victimDir, path.join(state(), name));
    }
    const gc = await w.run(['gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(victim(), before, 'the link target was not emptied');
    for (const name of ['trash', 'staging', 'downloads']) {
      const p = path.join(state(), name);
      assert.ok(!existsSync(p) || !lstatSync(p).isSymbolicLink(), `${name} is no longer a link`);
    }
    // And an update stages through them without following anything.
    for (const name of ['staging', 'downloads']) {
      rmSync(path.join(state(), name), { recursive: true, force: true });
      symlinkSync(victimDir, path.join(state(), name));
    }
    const up = await w.run(['update', '--version', '1.2.0']);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(victim(), before);
  });

  test('a lock planted as a link to another file: the file is untouched, the lock is replaced', async () => {
    const lock = path.join(state(), 'lock');
    rmSync(lock);
    symlinkSync(victimFile, lock);
    const before = victim();
    const r = await w.run(['rollback']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(victim(), before);
    assert.ok(lstatSync(lock).isFile());
    assert.equal(modeOf(lock), 0o600);
  });

  test('a history or state file planted as a link is refused before anything changes', async () => {
    for (const name of ['history.jsonl', 'state.json']) {
      const file = path.join(state(), name);
      const saved = readFileSync(file);
      rmSync(file);
      symlinkSync(victimFile, file);
      const before = w.snapshot();
      const victimBefore = victim();
      const r = await w.run(['update', '--version', '1.0.0', '--allow-downgrade']);
      assert.equal(r.code, 6, r.stderr);
      assert.match(lastLine(r.stderr), new RegExp(`E_UNSAFE_PATH: .*${name.replace('.', '\\.')} is a symbolic link`));
      assert.deepEqual(w.snapshot(), before);
      assert.deepEqual(victim(), victimBefore);
      rmSync(file);
      writeFileSync(file, saved);
    }
  });

  test('an install root, .cutover or releases another user can write is refused by every writing command', async () => {
    const cases: Array<{ setup: () => void; undo: () => void; path: RegExp }> = [
      { setup: () => chownSync(w.root, NOBODY, NOBODY), undo: () => chownSync(w.root, 0, 0), path: /install root \S+\/root is owned by uid 65534/ },
      { setup: () => chmodSync(state(), 0o777), undo: () => chmodSync(state(), 0o755), path: /\.cutover is writable by everyone/ },
      {
        setup: () => chmodSync(path.join(w.root, 'releases'), 0o775),
        undo: () => chmodSync(path.join(w.root, 'releases'), 0o755),
        path: /releases is writable by its group/,
      },
      { setup: () => chmodSync(w.dir, 0o777), undo: () => chmodSync(w.dir, 0o755), path: /cutover-world-\w+ is writable by everyone/ },
    ];
    for (const c of cases) {
      c.setup();
      try {
        const before = w.snapshot();
        for (const args of [['update', '--version', '1.1.0'], ['rollback'], ['gc']]) {
          const r = await w.run(args);
          assert.equal(r.code, 6, `${args.join(' ')}: ${r.stderr}`);
          assert.match(lastLine(r.stderr), /^demo: E_UNSAFE_PATH: /);
          assert.match(lastLine(r.stderr), c.path);
          assert.match(lastLine(r.stderr), /chown root:root|chmod go-w/);
          assert.deepEqual(w.snapshot(), before, `${args.join(' ')} changed nothing`);
        }
        // Reading stays possible.
        assert.equal((await w.run(['status'])).code, 0);
      } finally {
        c.undo();
      }
    }
  });

  test('a config file another user can write is refused; reading commands still work', async () => {
    const before = w.snapshot();
    for (const setup of [() => chmodSync(w.configFile, 0o666), () => chownSync(w.configFile, NOBODY, NOBODY)]) {
      setup();
      try {
        const r = await w.run(['update', '--version', '1.1.0']);
        assert.equal(r.code, 6, r.stderr);
        assert.match(lastLine(r.stderr), /E_UNSAFE_PATH: config file \S+cutover\.toml is (writable by group or others|owned by uid 65534)/);
        assert.deepEqual(w.snapshot(), before);
        assert.equal((await w.run(['status'])).code, 0);
      } finally {
        chmodSync(w.configFile, 0o644);
        chownSync(w.configFile, 0, 0);
      }
    }
  });

  test('the root may be reached through a root-owned symlink, not through one another user owns', async () => {
    const real = path.join(w.dir, 'real');
    mkdirSync(real, { mode: 0o755 });
    const rootLink = path.join(w.dir, 'via-root');
    symlinkSync(real, rootLink);
    const nobodyLink = path.join(w.dir, 'via-nobody');
    symlinkSync(real, nobodyLink);
    spawnSync('chown', ['-h', `${NOBODY}:${NOBODY}`, nobodyLink]);
    const saved = readFileSync(w.configFile, 'utf8');
    try {
      writeFileSync(w.configFile, saved.replace(`root = "${w.root}"`, `root = "${rootLink}/app"`));
      const ok = await w.run(['update', '--version', '1.1.0']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(existsSync(path.join(real, 'app', 'releases', 'v1.1.0', 'release.json')));
      writeFileSync(w.configFile, saved.replace(`root = "${w.root}"`, `root = "${nobodyLink}/app"`));
      const before = snapshotTree(real);
      const bad = await w.run(['update', '--version', '1.2.0']);
      assert.equal(bad.code, 6, bad.stderr);
      assert.match(lastLine(bad.stderr), /E_UNSAFE_PATH: install root \S+via-nobody is a symlink owned by uid 65534/);
      assert.deepEqual(snapshotTree(real), before);
    } finally {
      writeFileSync(w.configFile, saved);
    }
  });

  test('dry-run as root refuses a TMPDIR another user owns, and accepts a root-owned sticky /tmp', async () => {
    const tmp = path.join(w.dir, 'nobody-tmp');
    mkdirSync(tmp, { mode: 0o700 });
    chownSync(tmp, NOBODY, NOBODY);
    await w.publish('1.3.0');
    const before = snapshotTree(tmp);
    const bad = await w.run(['update', '--dry-run', '--version', '1.3.0'], { TMPDIR: tmp });
    assert.equal(bad.code, 6, bad.stderr);
    assert.match(lastLine(bad.stderr), /E_UNSAFE_PATH: TMPDIR \S+nobody-tmp is owned by uid 65534.*; unset TMPDIR/);
    assert.deepEqual(snapshotTree(tmp), before, 'nothing was written into it');
    const ok = await w.run(['update', '--dry-run', '--version', '1.3.0'], { TMPDIR: '/tmp' });
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe("the app's user runs its release", { skip }, () => {
  let w: World;
  before(async () => {
    w = await World.create();
    chmodSync(w.dir, 0o755);
    w.writeConfig({ top: 'user = "nobody"' });
    await w.publish('1.0.0', { files: { 'bin/demo': '#!/bin/sh\necho demo 1.0.0\n', 'lib/data.txt': 'data' } });
  });
  after(async () => {
    await w.close();
  });

  test('releases are root-owned and readable by all; runtime/ belongs to the user, 0750', async () => {
    const r = await w.run(['update']);
    assert.equal(r.code, 0, r.stderr);
    const rel = path.join(w.root, 'releases', 'v1.0.0');
    assert.equal(modeOf(rel), 0o755);
    assert.equal(statSync(rel).uid, 0);
    const runtime = path.join(w.root, 'runtime');
    assert.equal(modeOf(runtime), 0o750);
    assert.deepEqual([statSync(runtime).uid, statSync(runtime).gid], [NOBODY, Number(spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout.trim())]);
    // As the app's user: run the release, read its files, write its runtime; not write the release.
    const run = (cmd: string): number | null => spawnSync('sh', ['-c', cmd], { uid: NOBODY, gid: statSync(runtime).gid }).status;
    assert.equal(run(`${w.root}/current/bin/demo`), 0, 'the user can execute its release');
    assert.equal(run(`cat ${w.root}/current/lib/data.txt`), 0);
    assert.equal(run(`touch ${w.root}/current/runtime/written-by-app`), 0, 'the user can write runtime/ through the release link');
    assert.notEqual(run(`touch ${w.root}/current/lib/x`), 0, 'the user cannot change its release');
    assert.notEqual(run(`touch ${w.root}/.cutover/x`), 0);
  });

  test('an existing runtime/ the user cannot write gets a warning, never a chown', async () => {
    const runtime = path.join(w.root, 'runtime');
    chownSync(runtime, 0, 0);
    await w.publish('1.1.0');
    const r = await w.run(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: \S+runtime is not writable by nobody .*chown nobody: /);
    assert.deepEqual([statSync(runtime).uid, modeOf(runtime)], [0, 0o750]);
  });

  test('an account that does not exist is a config error before anything is touched', async () => {
    w.writeConfig({ top: 'user = "no-such-user-cutover"' });
    const before = w.snapshot();
    const r = await w.run(['update']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(lastLine(r.stderr), /E_CONFIG: .*user "no-such-user-cutover" is not an account on this machine/);
    assert.deepEqual(w.snapshot(), before);
    w.writeConfig({ top: 'user = "nobody"' });
  });
});
