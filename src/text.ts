/**
 * Text from outside (a /health answer, the release index, release.json, a server's error) must
 * not reach a terminal, the journal or --json as it is: an ESC can retitle the terminal or
 * repaint the screen, a newline can forge the final `E_…` line that scripts read. Control
 * characters are written as visible escapes (`\x1b`, `\n`, `\u202e`), so nothing raw survives,
 * even after a JSON parser decodes the output.
 */

/** C0, DEL, C1, the Unicode line/paragraph separators and the bidi embeddings, overrides and isolates. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

const UNTRUSTED_MAX = 1024;

/** Control characters made visible. Ordinary text (any script, emoji) passes unchanged. */
export function escapeControls(s: string): string {
  return s.replace(CONTROL, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** An untrusted string for a message: controls escaped, at most 1 KiB (UTF-16 units) kept. */
export function untrusted(s: string, max = UNTRUSTED_MAX): string {
  const cut = s.length > max ? `${s.slice(0, max)}…[truncated]` : s;
  return escapeControls(cut);
}

/** Every string in a JSON-able value, escaped: the last line of defence before --json output. */
export function escapeDeep<T>(value: T): T {
  if (typeof value === 'string') return escapeControls(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => escapeDeep(v)) as T;
  if (value && typeof value === 'object' && !(value instanceof Date) && !(value instanceof URL)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[escapeControls(k)] = escapeDeep(v);
    return out as T;
  }
  return value;
}
