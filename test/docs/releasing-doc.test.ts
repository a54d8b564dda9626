/**
 * docs/releasing.md stays true: its GitHub Actions workflow parses as YAML with the permissions
 * signing needs, and every `cutover release …` line of its shell blocks runs, in order, in a
 * vendor's directory (signing against the local test Sigstore instead of the public one).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { REPO, runCli } from '../helpers/cli.ts';
import { identityToken } from '../helpers/sigstore.ts';
import { identityFor, ISSUER, World } from '../helpers/world.ts';

const doc = readFileSync(path.join(REPO, 'docs', 'releasing.md'), 'utf8');
const blocks = (lang: string): string[] => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

/** Shell words, with single and double quotes (all the guide uses). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

describe('docs/releasing.md', () => {
  let w: World;
  before(async () => {
    w = await World.create();
  });
  after(async () => {
    await w.close();
  });

  test('the workflow parses as YAML: a tag push, id-token: write and contents: write, the cutover release steps', () => {
    const [yaml] = blocks('yaml');
    assert.ok(yaml, 'the guide has a yaml block');
    const wf = parse(yaml) as {
      on: { push: { tags: string[] } };
      permissions: Record<string, string>;
      jobs: Record<string, { steps: Array<{ run?: string; uses?: string }> }>;
    };
    assert.deepEqual(wf.on.push.tags, ['v*']);
    assert.equal(wf.permissions['id-token'], 'write');
    assert.equal(wf.permissions.contents, 'write');
    const runs = Object.values(wf.jobs)
      .flatMap((j) => j.steps)
      .map((s) => s.run ?? '')
      .join('\n');
    for (const sub of ['pack', 'sign', 'verify', 'index']) assert.match(runs, new RegExp(`cutover release ${sub} `), sub);
  });

  test('every `cutover release` line of the guide runs, in order', async () => {
    const vendor = path.join(w.dir, 'vendor');
    mkdirSync(path.join(vendor, 'build', 'bin'), { recursive: true });
    writeFileSync(path.join(vendor, 'build', 'bin', 'demo'), '#!/bin/sh\necho demo\n', { mode: 0o755 });
    const lines = blocks('sh')
      .flatMap((b) => b.split('\n'))
      .map((l) => l.trim())
      .filter((l) => l.startsWith('cutover release '));
    assert.deepEqual(
      lines.map((l) => words(l)[2]),
      ['pack', 'sign', 'verify', 'index'],
    );
    // The one difference from a vendor's run: the local Sigstore stands in for the public one.
    const local: Record<string, string[]> = {
      sign: ['--fulcio-url', w.sigstore.url, '--rekor-url', w.sigstore.url, '--tsa-url', w.sigstore.url],
      verify: ['--trusted-root', w.trustedRoot],
    };
    for (const line of lines) {
      const args = words(line).slice(1);
      const r = await runCli(
        [...args, ...(local[args[1]!] ?? [])].map((a) => (a.startsWith('out/') || a.startsWith('build/') ? path.join(vendor, a) : a)),
        {
          CUTOVER_PROG: 'cutover',
          SIGSTORE_ID_TOKEN: identityToken({ identity: identityFor('1.4.0'), issuer: ISSUER }),
        },
      );
      assert.equal(r.code, 0, `${line}\n${r.stderr}`);
    }
    const index = JSON.parse(readFileSync(path.join(vendor, 'out', 'index.json'), 'utf8')) as { releases: Array<{ version: string }> };
    assert.deepEqual(
      index.releases.map((r) => r.version),
      ['1.4.0'],
    );
  });
});
