import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { programName } from '../../src/cli/main.ts';
import { REPO, runCli } from '../helpers/cli.ts';

const VERSION = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

describe('the command line', () => {
  test('--version names cutover and its version under the vendor name', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `demo: cutover ${VERSION} (Node ${process.version})\n`);
    const plain = await runCli(['-V'], { CUTOVER_PROG: 'cutover' });
    assert.equal(plain.stdout, `cutover ${VERSION} (Node ${process.version})\n`);
    const json = await runCli(['--version', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), { ok: true, cutover: VERSION, node: process.version });
  });

  test('`update --version X` stays the update option', async () => {
    const r = await runCli(['update', '--version', '1.2.3', '--dry-run'], { CUTOVER_CONFIG: '/nonexistent/cutover.toml' });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^demo: E_CONFIG_MISSING: .*\/nonexistent\/cutover\.toml/m);
  });

  test('the program calls itself by the name it was invoked as', () => {
    assert.equal(programName('/usr/local/bin/app', {}), 'app');
    assert.equal(programName('/usr/local/bin/app', { CUTOVER_PROG: 'parako' }), 'parako');
    assert.equal(programName('/repo/src/cli/run.ts', {}), 'cutover');
    assert.equal(programName('/repo/dist/cli/main.js', {}), 'cutover');
    assert.equal(programName(undefined, {}), 'cutover');
    assert.equal(programName('/usr/bin/evil name;rm', {}), 'cutover');
    // It names the default config path /etc/<name>/cutover.toml: never a path of its own.
    assert.equal(programName('/x', { CUTOVER_PROG: '..' }), 'cutover');
    assert.equal(programName('/x', { CUTOVER_PROG: '../tmp/x' }), 'cutover');
  });
});
