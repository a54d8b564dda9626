import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CutoverError } from '../../src/errors.ts';
import { layoutOf } from '../../src/layout/paths.ts';
import { readCurrent, switchCurrent } from '../../src/layout/swap.ts';

test('switchCurrent writes a relative link by rename, leaving no temp link', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'cutover-swap-'));
  const layout = layoutOf(root);
  mkdirSync(path.join(root, 'releases', 'v1.0.0'), { recursive: true });
  mkdirSync(path.join(root, 'releases', 'v1.1.0'), { recursive: true });
  assert.equal(await readCurrent(layout), null);
  await switchCurrent(layout, '1.0.0');
  assert.equal(readlinkSync(layout.current), 'releases/v1.0.0');
  await switchCurrent(layout, '1.1.0');
  assert.equal(readlinkSync(layout.current), 'releases/v1.1.0');
  assert.equal(await readCurrent(layout), '1.1.0');
  assert.deepEqual(readdirSync(root).sort(), ['current', 'releases']);
});

test('a current that is a real directory is a layout error, left untouched', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'cutover-swap-'));
  const layout = layoutOf(root);
  mkdirSync(path.join(root, 'current', 'app'), { recursive: true });
  mkdirSync(path.join(root, 'releases', 'v1.0.0'), { recursive: true });
  await assert.rejects(readCurrent(layout), (e: unknown) => e instanceof CutoverError && e.code === 'E_LAYOUT');
  await assert.rejects(switchCurrent(layout, '1.0.0'), (e: unknown) => e instanceof CutoverError && e.code === 'E_LAYOUT');
  assert.deepEqual(readdirSync(path.join(root, 'current')), ['app']);
  assert.deepEqual(readdirSync(root).sort(), ['current', 'releases']);
});
