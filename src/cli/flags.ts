/**
 * Flag parsers shared by the commands: checked while the command line is parsed, before any I/O.
 */
import { CutoverError } from '../errors.ts';
import { checkVersion } from '../release/release-index.ts';

/** `--version` / `--to`: a semantic version, optional leading v, no build metadata. */
export function versionFlag(flag: string, example: string): (v: string) => string {
  return (v: string): string => {
    const checked = checkVersion(v);
    if (checked.ok) return checked.version;
    const bare = v.replace(/^v/i, '');
    const plus = bare.indexOf('+');
    const hint =
      plus >= 0 && checkVersion(bare.slice(0, plus)).ok
        ? `pass the version without its build metadata, e.g. v${bare.slice(0, plus)}`
        : `pass a semantic version like ${example} (the leading v is optional; prereleases like ${example}-rc.1 too)`;
    throw new CutoverError('E_USAGE', `${flag} ${checked.reason.replace(/^version /, '')}`, { hint, details: { flag, value: v } });
  };
}
