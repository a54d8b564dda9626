import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CODES, EXIT } from '../../src/errors.ts';
import { REPO } from '../helpers/cli.ts';

const doc = readFileSync(path.join(REPO, 'docs', 'errors.md'), 'utf8');

test('every error code is documented in docs/errors.md with its exit code', () => {
  for (const [code, exit] of Object.entries(CODES)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} missing from docs/errors.md`);
    assert.match(row, new RegExp(`^\\| \`${code}\` \\| ${exit} \\|`), `${code} documented with the wrong exit code`);
  }
});

test('every exit code is in the exit-code table', () => {
  for (const exit of new Set(Object.values(EXIT))) {
    assert.match(doc, new RegExp(`^\\| ${exit} \\| `, 'm'), `exit ${exit} missing`);
  }
});

test('no documented code that the program does not have', () => {
  for (const m of doc.matchAll(/^\| `(E_[A-Z_]+)` \|/gm)) {
    assert.ok(m[1]! in CODES, `${m[1]} is documented but does not exist`);
  }
});
