import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, entriesOf } from '../helpers/cli.ts';
import { smallFsAvailable, startSmallFs, type SmallFs } from '../helpers/small-fs.ts';
import { makeZeroBomb } from '../helpers/tarball.ts';
import { lastLine, World } from '../helpers/world.ts';

const MiB = 1024 ** 2;
const avail = smallFsAvailable();

/**
 * The install root on a 20 MiB tmpfs (private mount namespace): what fits, what fits only after
 * pruning, what never fits, and a real ENOSPC (inodes run out) halfway through an extraction.
 */
describe('disk space: budget before staging, pruning to make room, ENOSPC', { skip: avail.ok ? false : avail.why }, () => {
  let w: World;
  let fs: SmallFs;
  const releases = () => entriesOf(path.join(w.root, 'releases')).sort();
  const current = () => readlinkSync(path.join(w.root, 'current'));
  // Incompressible content: the download is as large as what it unpacks to.
  const publish = (version: string, mib: number, extra: { declare?: boolean; files?: Record<string, string | Buffer> } = {}) => {
    const blob = randomBytes(mib * MiB);
    return w.publish(version, {
      files: { 'bin/demo': `#!/bin/sh\necho ${version}\n`, 'data.bin': blob as unknown as string, ...extra.files },
      ...(extra.declare === false ? {} : { indexExtra: { unpacked_size: mib * MiB + 4096 } }),
    });
  };

  before(async () => {
    w = await World.create();
    w.writeConfig({ keep: 5, top: '[disk]\nreserve = "1MiB"' });
    fs = await startSmallFs(w.root, { bytes: 20 * MiB, inodes: 400 });
    w.runner = (args, env) => fs.exec(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, ...args], { CUTOVER_PROG: 'demo', ...env });
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) {
      await publish(v, 4);
      const r = await w.run(['update', '--version', v]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(releases(), [], 'the host does not see the small filesystem');
  });
  after(async () => {
    fs?.stop();
    await w?.close();
  });

  const inside = async (cmd: string): Promise<string> => (await fs.exec('sh', ['-c', cmd])).stdout.trim();

  test('a release that fits only after pruning: the oldest old release goes first, and the update says so', async () => {
    assert.equal(await inside(`ls ${w.root}/releases | tr '\\n' ' '`), 'v1.0.0 v1.1.0 v1.2.0');
    await publish('1.3.0', 4);
    const r = await w.run(['update', '--version', '1.3.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Not enough space for v1\.3\.0 \(8\.0 MiB needed, \S+ MiB available after the 1\.0 MiB reserve\): removing v1\.0\.0 first/);
    assert.equal(await inside(`ls ${w.root}/releases | tr '\\n' ' '`), 'v1.1.0 v1.2.0 v1.3.0');
    assert.equal(await inside(`readlink ${w.root}/current`), 'releases/v1.3.0');
    assert.deepEqual((JSON.parse(lastLine(r.stdout)) as { pruned: string[] }).pruned, ['1.0.0']);
  });

  test('a release that would not fit even after pruning is refused with the arithmetic; nothing is pruned', async () => {
    await publish('1.4.0', 9);
    const before = await inside(`cd ${w.root} && find . | sort | xargs ls -ld --time-style=+%s | awk '{print $1, $6, $7, $8, $9}'`);
    const r = await w.run(['update', '--version', '1.4.0']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(
      lastLine(r.stderr),
      /^demo: E_NO_SPACE: not enough disk space under \S+ for v1\.4\.0: it needs 18\.0 MiB \(download 9\.0 MiB \+ unpacked 9\.0 MiB\), the filesystem has \S+ MiB free minus a reserve of 1\.0 MiB = \S+ MiB; removing every release but current and previous would free only 4\.0 MiB; /,
    );
    const after = await inside(`cd ${w.root} && find . | sort | xargs ls -ld --time-style=+%s | awk '{print $1, $6, $7, $8, $9}'`);
    assert.equal(
      after
        .split('\n')
        .filter((l) => !l.includes('.cutover'))
        .join('\n'),
      before
        .split('\n')
        .filter((l) => !l.includes('.cutover'))
        .join('\n'),
    );
  });

  const unchanged = async (): Promise<void> => {
    assert.equal(await inside(`ls -A ${w.root}/.cutover/staging ${w.root}/.cutover/downloads 2>/dev/null | grep -v : | grep . || true`), '');
    assert.equal(await inside(`ls ${w.root}/releases | tr '\\n' ' '`), 'v1.1.0 v1.2.0 v1.3.0');
    assert.equal(await inside(`readlink ${w.root}/current`), 'releases/v1.3.0');
  };

  test('a signed 1 MiB archive that unpacks to 1 GiB of zeros is stopped by max_ratio: exit 5, staging removed', async () => {
    const bomb = await makeZeroBomb('demo', '1.6.0', 1024 ** 3);
    assert.ok(bomb.length < 1.1 * MiB, `bomb is ${bomb.length} bytes`);
    await w.publish('1.6.0', { archive: bomb });
    const r = await w.run(['update', '--version', '1.6.0']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      lastLine(r.stderr),
      /^demo: E_ARCHIVE_LIMIT: archive entry "zeros\/0\.bin" takes the archive past \d+ unpacked bytes, 100 times its \d+-byte download \(\[disk\] max_ratio\); do not install this archive/,
    );
    await unchanged();
  });

  test('without unpacked_size only the download is counted up front; extraction stops at the budget (exit 5), staging removed', async () => {
    // ~7 MiB free after the reserve: the 5 MiB download fits, its 5 MiB of content does not.
    await publish('1.7.0', 5, { declare: false });
    const r = await w.run(['update', '--version', '1.7.0']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      lastLine(r.stderr),
      /^demo: E_ARCHIVE_LIMIT: archive entry "data\.bin" would take the release past the \d+ bytes of disk space it may use \(free space minus the reserve and the download\); free disk space/,
    );
    await unchanged();
  });

  test('an index that declares less than the archive holds is refused at the declared size (exit 5)', async () => {
    const blob = randomBytes(2 * MiB);
    await w.publish('1.8.0', { files: { 'bin/demo': '#!/bin/sh\n', 'data.bin': blob as unknown as string }, indexExtra: { unpacked_size: MiB } });
    const r = await w.run(['update', '--version', '1.8.0']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      lastLine(r.stderr),
      /^demo: E_ARCHIVE_LIMIT: archive entry "data\.bin" takes the archive past its declared unpacked size of 1048576 bytes \(index unpacked_size\)/,
    );
    await unchanged();
  });

  test('running out of inodes halfway through extracting is exit 6 with staging removed and nothing changed', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 600; i++) files[`many/f${i}.txt`] = `${i}\n`;
    await publish('1.5.0', 0, { files });
    const r = await w.run(['update', '--version', '1.5.0']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(lastLine(r.stderr), /^demo: E_NO_SPACE: no space left while trying to write .*; free disk space/);
    assert.equal(await inside(`ls -A ${w.root}/.cutover/staging ${w.root}/.cutover/downloads 2>/dev/null | grep -v : | grep . || true`), '');
    assert.equal(await inside(`ls ${w.root}/releases | tr '\\n' ' '`), 'v1.1.0 v1.2.0 v1.3.0');
    assert.equal(await inside(`readlink ${w.root}/current`), 'releases/v1.3.0');
    assert.ok(!existsSync(path.join(w.root, 'releases')), 'still nothing on the host');
    void current;
  });
});
