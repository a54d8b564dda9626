import { createHash } from 'node:crypto';
import { packRelease } from '../../src/release/pack.ts';
import { signFile } from '../../src/release/sign.ts';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli, snapshotTree, spawnCli, type RunResult } from './cli.ts';
import { makeTestCA, ReleaseServer, type Fault } from './https-server.ts';
import { identityToken, startSigstore, type MockSigstore, type SignOptions } from './sigstore.ts';
import { DEFAULT_MTIME, makeRelease } from './tarball.ts';

export const IDENTITY_TEMPLATE = 'https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}';
export const ISSUER = 'https://token.actions.githubusercontent.com';

export function identityFor(version: string): string {
  return IDENTITY_TEMPLATE.replace('{version}', version);
}

export interface PublishOptions {
  /** Archive bytes; default: a valid release of `demo` at this version. */
  archive?: Buffer;
  /** Files inside the default release. */
  files?: Record<string, string>;
  /** More release.json fields of the default release (schema, migrate, …). */
  manifest?: Record<string, unknown>;
  /** Sign with this identity/issuer instead of the expected ones. */
  sign?: Partial<SignOptions>;
  /** Serve this bundle instead of a fresh one. */
  bundle?: Record<string, unknown>;
  /** Lie in the index. */
  indexSha256?: string;
  indexSize?: number;
  /** Sign with another, untrusted Sigstore instance. */
  untrusted?: boolean;
  /** More fields for the index entry (e.g. unpacked_size). */
  indexExtra?: Record<string, unknown>;
}

/**
 * A complete test world: a real HTTPS release server with its own CA, a real (mock-crypto)
 * Sigstore instance minting bundles, a trusted_root.json, a config file and an install root.
 */
export class World {
  readonly dir: string;
  readonly root: string;
  readonly configFile: string;
  readonly trustedRoot: string;
  readonly server: ReleaseServer;
  readonly sigstore: MockSigstore;
  private other: MockSigstore | undefined;
  readonly releases: Array<Record<string, unknown>> = [];
  readonly archives = new Map<string, Buffer>();
  readonly caFile: string;

  private constructor(dir: string, server: ReleaseServer, sigstore: MockSigstore, caFile: string) {
    this.dir = dir;
    this.root = path.join(dir, 'root');
    this.configFile = path.join(dir, 'cutover.toml');
    this.trustedRoot = path.join(dir, 'trusted_root.json');
    this.server = server;
    this.sigstore = sigstore;
    this.caFile = caFile;
  }

  private built = 0;

  /** How the CLI is run; tests with a namespaced systemd run it inside the namespace. */
  runner: ((args: string[], env: NodeJS.ProcessEnv) => Promise<RunResult>) | undefined;

  static async create(opts: { base?: string } = {}): Promise<World> {
    const dir = mkdtempSync(path.join(opts.base ?? tmpdir(), 'cutover-world-'));
    mkdirSync(path.join(dir, 'ca'));
    const ca = makeTestCA(path.join(dir, 'ca'));
    const server = await new ReleaseServer(ca).start();
    const sigstore = await startSigstore();
    const w = new World(dir, server, sigstore, ca.caFile);
    await sigstore.writeTrustedRoot(w.trustedRoot);
    w.writeConfig();
    w.publishIndex();
    return w;
  }

  writeConfig(extra: { keep?: number; top?: string; source?: string; trust?: string } = {}): void {
    writeFileSync(
      this.configFile,
      `app = "demo"
root = "${this.root}"
keep = ${extra.keep ?? 2}
${extra.top ?? ''}
[source]
index = "${this.server.url('demo/index.json')}"
ca = "${this.caFile}"
${extra.source ?? 'timeout = "20s"\nidle_timeout = "2s"'}

[trust]
identity = "${IDENTITY_TEMPLATE}"
issuer = "${ISSUER}"
trusted_root = "${this.trustedRoot}"
${extra.trust ?? ''}
`,
    );
  }

  async publish(version: string, opts: PublishOptions = {}): Promise<Buffer> {
    const plain = !opts.archive && !opts.bundle && !opts.sign && !opts.untrusted;
    // The default release goes the vendor's way (docs/releasing.md): `release pack` of a real
    // directory, `release sign` against this world's Sigstore. Hostile archives and odd bundles
    // are built by hand (tarball.ts, the mock's own signer).
    let archive: Buffer;
    let bundle: unknown;
    if (plain) {
      const n = ++this.built;
      const build = path.join(this.dir, '.vendor', 'builds', `${version}-${n}`);
      for (const [rel, content] of Object.entries(opts.files ?? { 'bin/demo': `#!/bin/sh\necho demo ${version}\n` })) {
        mkdirSync(path.dirname(path.join(build, rel)), { recursive: true });
        const body = Buffer.from(content);
        writeFileSync(path.join(build, rel), body, { mode: body.subarray(0, 2).toString() === '#!' ? 0o755 : 0o644 });
      }
      mkdirSync(build, { recursive: true });
      const packed = await packRelease({
        dir: build,
        name: 'demo',
        version,
        out: path.join(this.dir, '.vendor', 'out', String(n)),
        fields: opts.manifest ?? {},
        mtime: DEFAULT_MTIME,
      });
      const signed = await signFile({
        file: packed.file,
        token: identityToken({ identity: identityFor(version), issuer: ISSUER }),
        fulcioUrl: this.sigstore.url,
        rekorUrl: this.sigstore.url,
        tsaUrl: this.sigstore.url,
      });
      archive = readFileSync(packed.file);
      bundle = JSON.parse(readFileSync(signed.bundle, 'utf8')) as unknown;
    } else {
      archive =
        opts.archive ??
        makeRelease({
          name: 'demo',
          version,
          files: opts.files ?? { 'bin/demo': `#!/bin/sh\necho demo ${version}\n` },
          ...(opts.manifest ? { manifest: opts.manifest } : {}),
        });
      let signer = this.sigstore;
      if (opts.untrusted) {
        this.other ??= await startSigstore();
        signer = this.other;
      }
      bundle = opts.bundle ?? (await signer.sign(archive, { identity: identityFor(version), issuer: ISSUER, ...opts.sign }));
    }
    const name = `demo-${version}.tar.gz`;
    this.server.files.set(`demo/${name}`, archive);
    this.server.files.set(`demo/${name}.sigstore.json`, Buffer.from(JSON.stringify(bundle)));
    this.archives.set(version, archive);
    const i = this.releases.findIndex((r) => r.version === version);
    const entry = {
      version,
      artifact: name,
      bundle: `${name}.sigstore.json`,
      sha256: opts.indexSha256 ?? createHash('sha256').update(archive).digest('hex'),
      size: opts.indexSize ?? archive.length,
      ...opts.indexExtra,
    };
    if (i >= 0) this.releases[i] = entry;
    else this.releases.push(entry);
    this.publishIndex();
    return archive;
  }

  publishIndex(): void {
    this.server.files.set('demo/index.json', Buffer.from(JSON.stringify({ releases: this.releases })));
  }

  fault(file: string, fault: Fault): void {
    this.server.faults.set(`demo/${file}`, fault);
  }

  clearFaults(): void {
    this.server.faults.clear();
  }

  run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    if (this.runner) return this.runner(['--config', this.configFile, ...args], env);
    return runCli(['--config', this.configFile, ...args], env);
  }

  spawn(args: string[], env: NodeJS.ProcessEnv = {}) {
    return spawnCli(['--config', this.configFile, ...args], env);
  }

  /** current, releases/ and runtime/ as they are on disk (state bookkeeping excluded). */
  snapshot(): string[] {
    return snapshotTree(this.root, { skip: ['.cutover'] });
  }

  /** Files under the whole world dir outside the root and the CA/trust fixtures. */
  outsideRoot(): string[] {
    return snapshotTree(this.dir, { skip: ['root', 'ca', 'trusted_root.json', 'cutover.toml', '.vendor'] });
  }

  mkdirRuntime(): void {
    mkdirSync(path.join(this.root, 'runtime', 'data'), { recursive: true });
    writeFileSync(path.join(this.root, 'runtime', 'data', 'app.db'), 'operator data');
  }

  async close(): Promise<void> {
    await this.server.close();
    await this.sigstore.close();
    await this.other?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function lastLine(s: string): string {
  return s.trim().split('\n').pop() ?? '';
}
