/**
 * `npm run demo`: the whole operator experience on this machine, with nothing to set up.
 *
 * Starts a local HTTPS release server (its own CA) and a local Sigstore instance (real crypto,
 * offline), publishes two signed releases of an app called `demo`, and drives the real cutover
 * CLI against a sandbox install root: install, dry-run, update, status, rollback, list. Pass
 * `--keep` to leave the sandbox on disk to look at.
 */
import { World } from '../test/helpers/world.ts';

const keep = process.argv.includes('--keep');
const w = await World.create();
let failed = false;

function show(label: string, text: string): void {
  const t = text.trimEnd();
  if (t)
    process.stdout.write(
      `${t
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n')}\n`,
    );
  void label;
}

async function step(title: string, args: string[], expectExit = 0): Promise<void> {
  process.stdout.write(`\n# ${title}\n$ sudo demo ${args.join(' ')}\n`);
  const r = await w.run(args);
  show('stderr', r.stderr);
  show('stdout', r.stdout);
  if (r.code !== expectExit) {
    failed = true;
    process.stdout.write(`  !! exit ${r.code}, expected ${expectExit}\n`);
  } else if (expectExit !== 0) {
    process.stdout.write(`  (exit ${r.code}, as expected)\n`);
  }
}

try {
  await w.publish('1.0.0', { files: { 'bin/demo': '#!/bin/sh\necho "demo 1.0.0"\n' } });
  await w.publish('1.1.0', { files: { 'bin/demo': '#!/bin/sh\necho "demo 1.1.0"\n' } });
  // A release built from a branch, not a tag: same repo, different identity.
  await w.publish('1.2.0-rc.1', {
    sign: { identity: 'https://github.com/acme/demo/.github/workflows/release.yml@refs/heads/main' },
  });
  process.stdout.write(
    [
      'cutover demo',
      `  release server: ${w.server.origin}/demo/index.json (HTTPS, test CA)`,
      `  signatures:     Sigstore bundles minted by a local CA, CT log, transparency log and TSA`,
      `  identity:       https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}`,
      `  install root:   ${w.root}`,
      `  config:         ${w.configFile}`,
    ].join('\n') + '\n',
  );
  await step('Install the first release', ['update', '--version', 'v1.0.0']);
  await step('What would the next update do? (downloads and verifies in TMPDIR; changes nothing)', ['update', '--dry-run']);
  await step('Update to the newest release', ['update']);
  await step('Status', ['status']);
  await step('A release signed by the wrong workflow is refused', ['update', '--version', 'v1.2.0-rc.1'], 3);
  await step('Something went wrong? Roll back', ['rollback']);
  await step('Status after the rollback', ['status']);
  await step('Retained releases', ['list']);
  process.stdout.write(`\n${failed ? 'demo FAILED' : 'demo finished: every step behaved as expected'}\n`);
} finally {
  if (keep) {
    process.stdout.write(`sandbox kept at ${w.dir}\n`);
    await w.server.close();
    await w.sigstore.close();
  } else {
    await w.close();
  }
}
process.exitCode = failed ? 1 : 0;
