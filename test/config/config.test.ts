import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig, resolveConfigPath } from '../../src/config/config.ts';
import { CutoverError } from '../../src/errors.ts';

const GOOD = `app  = "demo"
root = "/opt/demo"
keep = 2

[source]
index = "https://releases.example.com/demo/index.json"
ca    = "/etc/demo/release-ca.pem"

[trust]
identity = "https://github.com/acme/demo/.github/workflows/release.yml@refs/tags/v{version}"
issuer   = "https://token.actions.githubusercontent.com"
`;

function configError(text: string): CutoverError {
  try {
    parseConfig(text, '/etc/demo/cutover.toml');
  } catch (e) {
    assert.ok(e instanceof CutoverError);
    return e;
  }
  assert.fail('expected a config error');
}

test('a complete config parses with defaults filled in', () => {
  const c = parseConfig(GOOD, 'x');
  assert.equal(c.app, 'demo');
  assert.equal(c.root, '/opt/demo');
  assert.equal(c.keep, 2);
  assert.equal(c.source.index.href, 'https://releases.example.com/demo/index.json');
  assert.equal(c.source.ca, '/etc/demo/release-ca.pem');
  assert.equal(c.trust.requireTlog, true);
  assert.equal(c.trust.requireTimestamp, true);
  assert.equal(c.source.timeoutMs, 30 * 60_000);
});

test('an unknown key is an error naming the key and its line', () => {
  const e = configError(GOOD.replace('issuer   =', 'isuer    ='));
  assert.equal(e.code, 'E_CONFIG');
  assert.equal(e.exitCode, 2);
  assert.match(e.message, /cutover\.toml:13: trust\.isuer is not a known setting|trust\.issuer is required/);
});

test('a misspelt top-level key names its line', () => {
  const e = configError(`kepp = 3\n${GOOD}`);
  assert.match(e.message, /cutover\.toml:1: kepp is not a known setting/);
  const t = configError(`${GOOD}\nkepp = 3\n`);
  assert.match(t.message, /cutover\.toml:13: trust\.kepp is not a known setting/);
});

test('bad values name the key', () => {
  assert.match(configError(GOOD.replace('keep = 2', 'keep = 101')).message, /:3: keep must be an integer from 0 to 100/);
  assert.match(configError(GOOD.replace('keep = 2', 'keep = "two"')).message, /keep must be an integer/);
  assert.match(configError(GOOD.replace('https://releases', 'http://releases')).message, /source\.index must be an https:\/\/ URL/);
  assert.match(configError(GOOD.replace('root = "/opt/demo"', 'root = "opt/demo"')).message, /root must be an absolute path/);
  assert.match(configError(GOOD.replace('root = "/opt/demo"', 'root = "/"')).message, /root must not be \//);
  assert.match(configError(GOOD.replace(/\[trust\][^]*$/, '')).message, /trust is required/);
  assert.match(configError(`${GOOD}require_tlog = "yes"\n`).message, /trust\.require_tlog must be true or false/);
});

test('invalid TOML reports its line', () => {
  const e = configError('app = "demo"\nroot = \n');
  assert.equal(e.code, 'E_CONFIG');
  assert.match(e.message, /cutover\.toml:2: invalid TOML/);
});

test('config path: flag, then CUTOVER_CONFIG, then /etc/<invoked name>/cutover.toml', () => {
  assert.equal(resolveConfigPath('app', '/x.toml', { CUTOVER_CONFIG: '/y.toml' }), '/x.toml');
  assert.equal(resolveConfigPath('app', undefined, { CUTOVER_CONFIG: '/y.toml' }), '/y.toml');
  assert.equal(resolveConfigPath('app', undefined, {}), '/etc/app/cutover.toml');
  assert.equal(resolveConfigPath('cutover', undefined, {}), '/etc/cutover/cutover.toml');
});
