import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { snapshotTree } from '../helpers/cli.ts';
import { lastLine, World } from '../helpers/world.ts';

const json = (s: string): Record<string, unknown> => JSON.parse(lastLine(s)) as Record<string, unknown>;
const current = (w: World): string => readlinkSync(path.join(w.root, 'current'));
const releasesOf = (w: World): string[] => readdirSync(path.join(w.root, 'releases')).sort();

/** Everything a refused command could have touched: requests, the tree, and the timestamps that writes or opens-with-create bump. */
function footprint(w: World): { hits: number; tree: string[]; outside: string[]; times: string[] } {
  const times = [w.root, path.join(w.root, '.cutover'), path.join(w.root, '.cutover', 'lock')].map((p) => {
    const st = lstatSync(p, { bigint: true });
    return `${p} mtime=${st.mtimeNs} ctime=${st.ctimeNs}`;
  });
  return { hits: w.server.hits.length, tree: snapshotTree(w.root), outside: w.outsideRoot(), times };
}

describe('malformed flags are refused before any I/O (exit 2)', () => {
  let w: World;
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0');
    await w.publish('1.1.0');
    assert.equal((await w.run(['update', '--version', '1.0.0'])).code, 0);
    assert.ok(w.server.hits.length > 0, 'the request log counts');
  });
  after(async () => {
    await w.close();
  });

  const cases: Array<[string[], RegExp]> = [
    [['update', '--version', '../../etc'], /--version "\.\.\/\.\.\/etc" is not a semantic version; pass a semantic version like v1\.4\.0/],
    [['update', '--version', 'v1;rm'], /--version "v1;rm" is not a semantic version/],
    [['update', '--version', '1.2'], /--version "1\.2" is not a semantic version/],
    [['update', '--version', ''], /--version "" is not a semantic version/],
    [['update', '--version', 'v1.1.0\nE_FAKE: x'], /--version "v1\.1\.0\\nE_FAKE: x" is not a semantic version/],
    [
      ['update', '--version', '1.1.0+build.7'],
      /--version "1\.1\.0\+build\.7" carries build metadata \("\+build\.7"\): cutover does not accept build metadata in versions; pass the version without its build metadata, e\.g\. v1\.1\.0/,
    ],
    [['update', '--dry-run', '--version', '../1.1.0'], /--version "\.\.\/1\.1\.0" is not a semantic version/],
    [['rollback', '--to', '../../etc'], /--to "\.\.\/\.\.\/etc" is not a semantic version; pass a semantic version like v1\.3\.2/],
    [['rollback', '--to', '1.2'], /--to "1\.2" is not a semantic version/],
    [['rollback', '--to', '1.0.0+build.7'], /--to "1\.0\.0\+build\.7" carries build metadata/],
    [['gc', '--keep', '-1'], /--keep "-1" is refused: it must be a whole number from 0 to 100/],
    [['gc', '--keep', '1.5'], /--keep "1\.5" is refused/],
    [['gc', '--keep', 'abc'], /--keep "abc" is refused/],
    [['gc', '--keep', '101'], /--keep "101" is refused/],
    [['gc', '--keep', ''], /--keep "" is refused/],
    [['gc', '--keep', '1e1'], /--keep "1e1" is refused/],
  ];
  for (const [args, message] of cases) {
    test(JSON.stringify(args.slice(1)), async () => {
      const before = footprint(w);
      const r = await w.run(args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(r.stderr, /^demo: E_USAGE: .+; .+/);
      assert.match(r.stderr, message);
      assert.deepEqual(footprint(w), before, 'no request, no lock opened, nothing under root touched');
      assert.equal(current(w), 'releases/v1.0.0');
    });
  }

  test('with --json the refusal is one JSON document', async () => {
    const before = footprint(w);
    const r = await w.run(['--json', 'update', '--version', '1.1.0+build.7']);
    assert.equal(r.code, 2);
    const doc = json(r.stdout) as { ok: boolean; error: { code: string; message: string } };
    assert.equal(doc.ok, false);
    assert.equal(doc.error.code, 'E_USAGE');
    assert.match(doc.error.message, /cutover does not accept build metadata in versions/);
    assert.deepEqual(footprint(w), before);
  });

  test('well-formed values go through: v-prefixed, bare, prerelease', async () => {
    await w.publish('1.2.0-rc.1');
    let r = await w.run(['update', '--version', 'v1.1.0']);
    assert.equal(r.code, 0, r.stderr);
    r = await w.run(['update', '--version', '1.2.0-rc.1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(current(w), 'releases/v1.2.0-rc.1');
    r = await w.run(['rollback', '--to', 'V1.0.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(current(w), 'releases/v1.0.0');
  });
});

describe('an index with bad entries among good ones', () => {
  let w: World;
  before(async () => {
    w = await World.create();
    await w.publish('1.0.0');
    await w.publish('1.1.0', { indexExtra: { unpacked_size: 1 << 20 } });
    const good = w.releases[1]!;
    w.releases.push(
      { ...good, version: '1.2' },
      { ...good, version: '1.3.0', sha256: 'nope' },
      { ...good, version: '1.4.0+build.7' },
      { ...good, version: '1.5.0', unpacked_size: -5 },
      { ...good, version: '1.6.0', artifact: 'http://127.0.0.1/demo-1.1.0.tar.gz' },
    );
    w.releases.push({ ...w.releases[0]!, version: 'v1.7.0' }, { ...w.releases[0]!, version: '1.7.0' });
    w.publishIndex();
  });
  after(async () => {
    await w.close();
  });

  test('update installs the newest good release and warns once per bad entry, naming it', async () => {
    const r = await w.run(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(current(w), 'releases/v1.1.0');
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('demo: warning: the release index lists an invalid'));
    assert.equal(warnings.length, 7, r.stderr);
    const expected = [
      /entry 2 \(version "1\.2"\), skipped: version "1\.2" is not a semantic version; tell the vendor$/,
      /entry 3 \(version "1\.3\.0"\), skipped: sha256 "nope" is not 64 hex digits/,
      /entry 4 \(version "1\.4\.0\+build\.7"\), skipped: .*cutover does not accept build metadata in versions/,
      /entry 5 \(version "1\.5\.0"\), skipped: unpacked_size -5 is not a positive byte count/,
      /entry 6 \(version "1\.6\.0"\), skipped: artifact "http:\/\/127\.0\.0\.1\/demo-1\.1\.0\.tar\.gz" is not an https URL/,
      /entry 7 \(version "v1\.7\.0"\), skipped: version 1\.7\.0 is listed 2 times \(entries 7, 8\)/,
      /entry 8 \(version "1\.7\.0"\), skipped: version 1\.7\.0 is listed 2 times/,
    ];
    expected.forEach((re, i) => assert.match(warnings[i] ?? '', re));
  });

  test('--version of a skipped entry is E_VERSION_UNKNOWN with its reason; nothing changes', async () => {
    const before = w.snapshot();
    for (const [v, reason] of [
      ['1.3.0', 'sha256 "nope" is not 64 hex digits'],
      ['v1.5.0', 'unpacked_size -5 is not a positive byte count'],
      ['1.4.0', 'version "1.4.0+build.7" carries build metadata ("+build.7"): cutover does not accept build metadata in versions'],
    ] as const) {
      const r = await w.run(['update', '--version', v]);
      assert.equal(r.code, 2, r.stderr);
      const tag = `v${v.replace(/^v/, '')}`;
      assert.equal(lastLine(r.stderr), `demo: E_VERSION_UNKNOWN: ${tag} is listed in the index but its entry is invalid: ${reason}; tell the vendor`);
      assert.deepEqual(w.snapshot(), before);
      assert.equal(current(w), 'releases/v1.1.0');
    }
  });

  test('check and the daemon policy see only the good entries', async () => {
    const r = await w.run(['check', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(json(r.stdout).newest, '1.1.0');
  });

  test('a document without a releases array is still E_INDEX_INVALID (exit 4)', async () => {
    w.server.files.set('demo/index.json', Buffer.from(JSON.stringify({ release: [] })));
    try {
      const r = await w.run(['update']);
      assert.equal(r.code, 4, r.stderr);
      assert.match(lastLine(r.stderr), /E_INDEX_INVALID: .*expected an object with a "releases" array/);
    } finally {
      w.publishIndex();
    }
  });
});

describe('gc --keep 0 and damaged retained releases', () => {
  let w: World;
  const versions = ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '1.5.0'];
  before(async () => {
    w = await World.create();
    w.writeConfig({ keep: 10 });
    for (const v of versions) {
      await w.publish(v);
      const r = await w.run(['update', '--version', v]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(
      releasesOf(w),
      versions.map((v) => `v${v}`),
    );
  });
  after(async () => {
    await w.close();
  });

  const manifest = (v: string): string => path.join(w.root, 'releases', `v${v}`, 'release.json');
  const damages: Array<[string, string, () => void, RegExp]> = [
    ['release.json deleted', '1.0.0', () => rmSync(manifest('1.0.0')), /release\.json is missing/],
    ['release.json a directory', '1.1.0', () => (rmSync(manifest('1.1.0')), mkdirSync(manifest('1.1.0'))), /release\.json is not a regular file/],
    [
      'release.json naming another version',
      '1.2.0',
      () => writeFileSync(manifest('1.2.0'), '{"name":"demo","version":"9.9.9"}'),
      /says version "9\.9\.9", expected "1\.2\.0"/,
    ],
    ['release.json naming another app', '1.3.0', () => writeFileSync(manifest('1.3.0'), '{"name":"other","version":"1.3.0"}'), /names the app "other"/],
  ];
  for (const [name, v, damage, reason] of damages) {
    test(`rollback --to a retained release whose ${name}: exit 6 E_RELEASE_DAMAGED, nothing switched`, async () => {
      damage();
      const before = w.snapshot();
      const r = await w.run(['rollback', '--to', `v${v}`]);
      assert.equal(r.code, 6, r.stderr);
      const line = lastLine(r.stderr);
      assert.match(line, new RegExp(`^demo: E_RELEASE_DAMAGED: installed release v${v.replace(/\./g, '\\.')} is damaged: .*`));
      assert.match(line, reason);
      assert.match(line, /; roll back to another release from `list`, or remove .* and reinstall it with `update --version v/);
      assert.equal(current(w), 'releases/v1.5.0');
      assert.deepEqual(w.snapshot(), before);
    });
  }

  test('update --version of an installed but damaged release (a switch, no download): exit 6 E_RELEASE_DAMAGED, nothing switched', async () => {
    const before = w.snapshot();
    const r = await w.run(['update', '--version', 'v1.2.0', '--allow-downgrade']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(lastLine(r.stderr), /^demo: E_RELEASE_DAMAGED: installed release v1\.2\.0 is damaged: .*says version "9\.9\.9", expected "1\.2\.0"/);
    assert.equal(current(w), 'releases/v1.5.0');
    assert.deepEqual(w.snapshot(), before);
  });

  test('rollback to a previous release that is not JSON: exit 6 E_RELEASE_DAMAGED', async () => {
    const original = readFileSync(manifest('1.4.0'));
    writeFileSync(manifest('1.4.0'), 'not json {');
    const before = w.snapshot();
    const r = await w.run(['rollback', '--json']);
    assert.equal(r.code, 6, r.stderr);
    const doc = json(r.stdout) as { error: { code: string; message: string } };
    assert.equal(doc.error.code, 'E_RELEASE_DAMAGED');
    assert.match(doc.error.message, /v1\.4\.0 is damaged: .*is not valid JSON/);
    assert.equal(current(w), 'releases/v1.5.0');
    assert.deepEqual(w.snapshot(), before);
    // Put back exactly what was installed (verify would refuse anything else as modified).
    writeFileSync(manifest('1.4.0'), original);
  });

  test('gc --keep 0 with six releases leaves exactly current and previous; rollback still works', async () => {
    const r = await w.run(['gc', '--keep', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout).pruned, ['1.3.0', '1.2.0', '1.1.0', '1.0.0']);
    assert.deepEqual(releasesOf(w), ['v1.4.0', 'v1.5.0']);
    assert.equal(current(w), 'releases/v1.5.0');
    assert.deepEqual(readdirSync(path.join(w.root, '.cutover', 'trash')), []);
    const state = JSON.parse(readFileSync(path.join(w.root, '.cutover', 'state.json'), 'utf8')) as { installed: Record<string, unknown>; previous: string };
    assert.deepEqual(Object.keys(state.installed).sort(), ['1.4.0', '1.5.0']);
    assert.equal(state.previous, '1.4.0');
    const rb = await w.run(['rollback']);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(current(w), 'releases/v1.4.0');
  });

  test('keep = 0 in the config: an update keeps the new current and the one it replaced', async () => {
    w.writeConfig({ keep: 0 });
    await w.publish('1.6.0');
    const r = await w.run(['update', '--version', '1.6.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(releasesOf(w), ['v1.4.0', 'v1.6.0']);
    assert.equal(current(w), 'releases/v1.6.0');
  });
});
