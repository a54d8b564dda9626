import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { entriesOf } from '../helpers/cli.ts';
import { World } from '../helpers/world.ts';

/** `current` must always name a complete release: its release.json says what its name says. */
function assertCurrentComplete(w: World, allowed: string[]): string {
  const target = readlinkSync(path.join(w.root, 'current'));
  const m = /^releases\/v(.+)$/.exec(target);
  assert.ok(m?.[1], `current -> ${target}`);
  assert.ok(allowed.includes(m[1]), `current -> ${target}, expected one of ${allowed.join(', ')}`);
  const manifest = JSON.parse(readFileSync(path.join(w.root, target, 'release.json'), 'utf8')) as { version: string };
  assert.equal(manifest.version, m[1]);
  for (let i = 0; i < 200; i += 37) {
    readFileSync(path.join(w.root, target, 'lib', `f${i}.js`));
  }
  return m[1];
}

function bigFiles(version: string): Record<string, string> {
  const files: Record<string, string> = {};
  // Hex of random bytes: compresses about 2:1, like real code (a run of one letter would be a
  // 450:1 "bomb" that [disk] max_ratio refuses).
  for (let i = 0; i < 200; i++) files[`lib/f${i}.js`] = `// ${version} ${i}\n${randomBytes(10_000 + i).toString('hex')}\n`;
  return files;
}

describe('SIGKILL at any moment leaves current on a complete release; the next run recovers', () => {
  let w: World;
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0', { files: bigFiles('1.0.0') });
    await w.publish('2.0.0', { files: bigFiles('2.0.0') });
    const r = await w.run(['update', '--version', '1.0.0']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await w.close();
  });

  async function killWhen(pattern: RegExp, delayMs: number): Promise<void> {
    const { child, done } = w.spawn(['update', '--version', '2.0.0']);
    let seen = '';
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer): void => {
        seen += d.toString();
        if (pattern.test(seen)) {
          child.stderr!.off('data', onData);
          setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, delayMs);
        }
      };
      child.stderr!.on('data', onData);
      void done.then(() => resolve());
    });
    await done;
  }

  async function rerunAndReset(): Promise<void> {
    const r = await w.run(['update', '--version', '2.0.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(assertCurrentComplete(w, ['2.0.0']), '2.0.0');
    for (const d of ['staging', 'downloads', 'trash']) {
      assert.deepEqual(entriesOf(path.join(w.root, '.cutover', d)), []);
    }
    assert.deepEqual(
      readdirSync(w.root).filter((n) => n.startsWith('.current.tmp-')),
      [],
    );
    const s = JSON.parse(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8')) as { format: number; journal: unknown };
    assert.equal(s.format, 2);
    assert.equal(s.journal, null, 'the journal is empty once the operation is settled');
    // Back to 1.0.0 for the next round.
    const back = await w.run(['rollback', '--to', 'v1.0.0']);
    assert.equal(back.code, 0, back.stderr);
  }

  const points: Array<[string, RegExp, number]> = [
    ['during verification', /Verifying/, 1],
    ['early in the streamed download and extraction', /Downloading/, 5],
    ['late in the streamed download and extraction', /Downloading/, 30],
    ['while flushing to disk', /Flushing/, 0],
    ['at the switch', /Switching current/, 0],
    ['right after the switch', /Switching current/, 3],
    ['while pruning or recording', /is now on/, 0],
  ];
  for (const [name, pattern, delay] of points) {
    test(name, async () => {
      await killWhen(pattern, delay);
      assertCurrentComplete(w, ['1.0.0', '2.0.0']);
      await rerunAndReset();
    });
  }

  test('kills spread across a whole update, each followed by a clean re-run', async () => {
    for (const delay of [20, 60, 120, 200, 300]) {
      const { child, done } = w.spawn(['update', '--version', '2.0.0']);
      setTimeout(() => child.kill('SIGKILL'), delay);
      await done;
      assertCurrentComplete(w, ['1.0.0', '2.0.0']);
      await rerunAndReset();
    }
  });
});
