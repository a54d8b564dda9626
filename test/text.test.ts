import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeControls, escapeDeep, untrusted } from '../src/text.ts';

// Every character class that must never reach a terminal raw.
const RAW = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test('C0, DEL, C1, line separators and bidi controls are written as visible escapes', () => {
  assert.equal(escapeControls('a\x1b]0;pwned\x07b'), 'a\\x1b]0;pwned\\x07b');
  assert.equal(escapeControls('one\ntwo\rthree\tfour'), 'one\\ntwo\\rthree\\tfour');
  assert.equal(escapeControls('\x00\x7f\x85\x9b'), '\\x00\\x7f\\x85\\x9b');
  assert.equal(escapeControls('x\u2028y\u2029z'), 'x\\u2028y\\u2029z');
  assert.equal(escapeControls('\u202egnp.exe\u2066\u2069'), '\\u202egnp.exe\\u2066\\u2069');
  for (let c = 0; c < 0x3000; c++) {
    const out = escapeControls(String.fromCharCode(c));
    if (out.length > 1) assert.doesNotMatch(out, RAW, `U+${c.toString(16)} left raw`);
  }
});

test('ordinary text is unchanged, any script, and escaping twice changes nothing more', () => {
  for (const s of ['demo v1.4.0 (sha256 ab12…)', 'Grüße, 你好, مرحبا', 'emoji 🚀 and 𝄞', '']) assert.equal(escapeControls(s), s);
  const once = escapeControls('a\x1bb');
  assert.equal(escapeControls(once), once);
});

test('an untrusted string is capped at 1 KiB', () => {
  const long = 'x'.repeat(5000);
  const out = untrusted(long);
  assert.equal(out, `${'x'.repeat(1024)}…[truncated]`);
  assert.equal(untrusted('short'), 'short');
});

test('escapeDeep escapes every string in a JSON value, keys included, and survives JSON decoding', () => {
  const v = { ok: false, error: { message: 'version 1.0\x1b[2J', details: { list: ['\n', 3, null, true], 'k\x07': 'v' } } };
  const decoded = JSON.parse(JSON.stringify(escapeDeep(v))) as unknown;
  const strings: string[] = [];
  const walk = (x: unknown): void => {
    if (typeof x === 'string') strings.push(x);
    else if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object')
      for (const [k, y] of Object.entries(x)) {
        strings.push(k);
        walk(y);
      }
  };
  walk(decoded);
  for (const s of strings) assert.doesNotMatch(s, RAW);
  assert.deepEqual(decoded, { ok: false, error: { message: 'version 1.0\\x1b[2J', details: { list: ['\\n', 3, null, true], 'k\\x07': 'v' } } });
});
