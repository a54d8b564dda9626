/**
 * The vendor's whole path with real components: pack a real directory, sign it with a local
 * Sigstore (Fulcio, Rekor and a TSA over HTTP), verify it, index it, serve the output directory
 * over the test HTTPS server, and `update` installs it; the same through a DSSE attestation.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { identityToken } from '../helpers/sigstore.ts';
import { IDENTITY_TEMPLATE, identityFor, ISSUER, lastLine, World } from '../helpers/world.ts';

const json = (s: string): Record<string, unknown> => JSON.parse(lastLine(s)) as Record<string, unknown>;

describe('cutover release pack | sign | verify | index, then update installs it', () => {
  let w: World;
  let out: string;
  let build: string;
  const release = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runCli(['release', ...args], { CUTOVER_PROG: 'cutover', SOURCE_DATE_EPOCH: '1700000000', ...env });
  /** Publish everything in out/ under demo/ on the test HTTPS server, as a vendor uploads a directory. */
  const upload = (): void => {
    for (const name of readdirSync(out)) w.server.files.set(`demo/${name}`, readFileSync(path.join(out, name)));
  };

  before(async () => {
    w = await World.create();
    out = path.join(w.dir, 'out');
    build = path.join(w.dir, 'build');
    mkdirSync(path.join(build, 'bin'), { recursive: true });
    writeFileSync(path.join(build, 'bin', 'demo'), '#!/bin/sh\necho demo\n', { mode: 0o755 });
    writeFileSync(path.join(build, 'README'), 'built by CI\n');
  });
  after(async () => {
    await w.close();
  });

  const sign = (file: string, version: string) =>
    release([
      'sign',
      file,
      '--identity-token',
      identityToken({ identity: identityFor(version), issuer: ISSUER }),
      '--fulcio-url',
      w.sigstore.url,
      '--rekor-url',
      w.sigstore.url,
      '--tsa-url',
      w.sigstore.url,
    ]);

  test('pack, sign, verify, index: each a command, each prints what it made', async () => {
    let r = await release(['pack', build, '--name', 'demo', '--version', '1.4.0', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const packed = json(r.stdout) as { file: string; sha256: string; size: number; unpacked_size: number };
    assert.equal(packed.file, path.join(out, 'demo-1.4.0.tar.gz'));

    r = await sign(packed.file, '1.4.0');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`identity: ${identityFor('1.4.0').replaceAll('.', '\\.')}`));
    assert.match(
      r.stderr,
      /operators configure: \[trust\] identity = "https:\/\/github\.com\/acme\/demo\/\.github\/workflows\/release\.yml@refs\/tags\/v\{version\}"/,
    );
    const bundle = JSON.parse(readFileSync(`${packed.file}.sigstore.json`, 'utf8')) as { mediaType: string; messageSignature?: unknown };
    assert.equal(bundle.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.ok(bundle.messageSignature);

    r = await release(['verify', packed.file, '--identity', IDENTITY_TEMPLATE, '--issuer', ISSUER, '--trusted-root', w.trustedRoot, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(json(r.stdout).identity, identityFor('1.4.0'));

    r = await release(['index', path.join(out, 'index.json'), '--add', packed.file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const index = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8')) as { releases: Array<Record<string, unknown>> };
    assert.deepEqual(index.releases, [
      {
        version: '1.4.0',
        artifact: 'demo-1.4.0.tar.gz',
        bundle: 'demo-1.4.0.tar.gz.sigstore.json',
        sha256: packed.sha256,
        size: packed.size,
        unpacked_size: packed.unpacked_size,
      },
    ]);
    upload();
    r = await w.run(['update', '--version', 'v1.4.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(w.root, 'current', 'README'), 'utf8'), 'built by CI\n');
  });

  test('verify refuses a wrong identity with the code update gives (E_SIG_IDENTITY, exit 3)', async () => {
    const file = path.join(out, 'demo-1.4.0.tar.gz');
    const r = await release([
      'verify',
      file,
      '--identity',
      'https://github.com/acme/demo/.github/workflows/other.yml@refs/tags/v{version}',
      '--issuer',
      ISSUER,
      '--trusted-root',
      w.trustedRoot,
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_SIG_IDENTITY/);
  });

  test('index: the same bytes again are a no-op; other bytes for a listed version are refused (exit 3), the file unchanged; --remove drops it', async () => {
    const indexFile = path.join(out, 'index.json');
    const before = readFileSync(indexFile);
    let r = await release(['index', indexFile, '--add', path.join(out, 'demo-1.4.0.tar.gz')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /already listed with the same bytes/);
    const other = path.join(w.dir, 'other');
    writeFileSync(path.join(build, 'README'), 'changed after publishing\n');
    r = await release(['pack', build, '--name', 'demo', '--version', '1.4.0', '--out', other]);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(path.join(other, 'demo-1.4.0.tar.gz.sigstore.json'), '{}');
    r = await release(['index', indexFile, '--add', path.join(other, 'demo-1.4.0.tar.gz')]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /E_INDEX_DIGEST_CHANGED: \S+ already lists v1\.4\.0 with sha256 [0-9a-f]{64}/);
    assert.deepEqual(readFileSync(indexFile), before);
    const copy = path.join(w.dir, 'yank.json');
    writeFileSync(copy, before);
    r = await release(['index', copy, '--remove', '1.4.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(readFileSync(copy, 'utf8')) as { releases: unknown[] }).releases, []);
  });

  test('a GitHub-style DSSE attestation (in-toto subject digest) verifies and installs too', async () => {
    writeFileSync(path.join(build, 'README'), 'attested\n');
    let r = await release(['pack', build, '--name', 'demo', '--version', '1.5.0', '--out', out, '--json', '--schema', '1']);
    assert.equal(r.code, 0, r.stderr);
    const file = (json(r.stdout) as { file: string }).file;
    const bundle = await w.sigstore.attest(readFileSync(file), path.basename(file), { identity: identityFor('1.5.0'), issuer: ISSUER });
    writeFileSync(`${file}.sigstore.json`, JSON.stringify(bundle));
    r = await release(['verify', file, '--identity', IDENTITY_TEMPLATE, '--issuer', ISSUER, '--trusted-root', w.trustedRoot]);
    assert.equal(r.code, 0, r.stderr);
    r = await release(['index', path.join(out, 'index.json'), '--add', file]);
    assert.equal(r.code, 0, r.stderr);
    const index = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8')) as { releases: Array<{ version: string; schema?: number }> };
    assert.deepEqual(
      index.releases.map((e) => [e.version, e.schema]),
      [
        ['1.5.0', 1],
        ['1.4.0', undefined],
      ],
      'newest first; schema repeated from release.json',
    );
    upload();
    r = await w.run(['update', '--version', 'v1.5.0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(path.join(w.root, 'current', 'README'), 'utf8'), 'attested\n');
  });
});
