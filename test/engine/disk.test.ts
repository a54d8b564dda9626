import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planSpace, reserveBytes, type SpaceInput } from '../../src/engine/disk.ts';
import { rejects } from '../helpers/assert.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const base: SpaceInput = {
  version: '1.4.0',
  root: '/opt/demo',
  free: 1000 * MiB,
  total: 10 * GiB,
  reserve: undefined,
  download: 100 * MiB,
  unpacked: 300 * MiB,
  prunable: [],
  prunedAnyway: [],
};

test('the default reserve is 5% of the filesystem or 1 GiB, whichever is smaller', () => {
  assert.equal(reserveBytes(undefined, 10 * GiB), 512 * MiB);
  assert.equal(reserveBytes(undefined, 100 * GiB), GiB);
  assert.equal(reserveBytes({ percent: 10 }, 10 * GiB), GiB);
  assert.equal(reserveBytes({ bytes: 123 }, 10 * GiB), 123);
});

test('a release that fits prunes nothing and leaves the rest as the extraction budget', () => {
  const p = planSpace(base);
  assert.deepEqual(p.prune, []);
  assert.equal(p.reserve, 512 * MiB);
  assert.equal(p.available, 488 * MiB);
  assert.equal(p.budget, 388 * MiB);
});

test('when it fits only after pruning, the releases pruned anyway go first, then the oldest, no more than needed', () => {
  const p = planSpace({
    ...base,
    free: 700 * MiB,
    prunable: [
      { version: '1.0.0', bytes: 150 * MiB },
      { version: '1.2.0', bytes: 150 * MiB },
      { version: '1.1.0', bytes: 150 * MiB },
    ],
    prunedAnyway: ['1.2.0'],
  });
  // available 188 MiB, need 400: 1.2.0 (+150 = 338), then the oldest, 1.0.0 (+150 = 488).
  assert.deepEqual(p.prune, ['1.2.0', '1.0.0']);
  assert.equal(p.budget, 388 * MiB);
});

test('when even pruning every candidate is not enough, it refuses with the arithmetic and prunes nothing', () => {
  const e = rejects('E_NO_SPACE', () => planSpace({ ...base, free: 600 * MiB, prunable: [{ version: '1.0.0', bytes: 10 * MiB }] }));
  assert.match(
    e.message,
    /needs 400\.0 MiB \(download 100\.0 MiB \+ unpacked 300\.0 MiB\), the filesystem has 600\.0 MiB free minus a reserve of 512\.0 MiB = 88\.0 MiB; removing every release but current and previous would free only 10\.0 MiB/,
  );
  assert.equal(e.exitCode, 6);
});

test('without a declared unpacked size only the download is counted up front', () => {
  const p = planSpace({ ...base, unpacked: undefined, free: 700 * MiB });
  assert.deepEqual(p.prune, []);
  assert.equal(p.budget, 88 * MiB);
  const e = rejects('E_NO_SPACE', () => planSpace({ ...base, unpacked: undefined, free: 550 * MiB }));
  assert.match(e.message, /needs the download of 100\.0 MiB, .* = 38\.0 MiB; there are no old releases to remove/);
});
