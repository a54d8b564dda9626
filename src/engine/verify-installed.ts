/** `verify [vX | --all]`: installed releases against their install records. Reads only. */
import type { Config } from '../config/config.ts';
import { CutoverError } from '../errors.ts';
import { layoutOf } from '../layout/paths.ts';
import { checkRelease, type ReleaseCheck } from '../layout/release-record.ts';
import { listInstalled } from '../layout/releases.ts';
import { readCurrent } from '../layout/swap.ts';

export async function verifyInstalled(config: Pick<Config, 'root'>, opts: { version: string | undefined; all: boolean }): Promise<ReleaseCheck[]> {
  const layout = layoutOf(config.root);
  const installed = await listInstalled(layout);
  let versions: string[];
  if (opts.all) versions = installed;
  else if (opts.version !== undefined) versions = [opts.version];
  else {
    const current = await readCurrent(layout);
    if (current === null) throw new CutoverError('E_NOT_INSTALLED', 'nothing is current', { hint: 'pass a version, or --all' });
    versions = [current];
  }
  for (const v of versions) {
    if (!installed.includes(v))
      throw new CutoverError('E_NOT_INSTALLED', `v${v} is not installed under ${layout.releases}`, { hint: 'pick a release from `list`' });
  }
  const out: ReleaseCheck[] = [];
  for (const v of versions) out.push(await checkRelease(layout, v));
  return out;
}
