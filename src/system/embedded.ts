/**
 * What the single executable (`npm run build:exe`, scripts/build-exe.ts) carries inside it in
 * place of files that a source install reads from disk: cutover's version and the Sigstore
 * trust-root seed of @sigstore/tuf. Outside the executable every lookup is undefined and the
 * callers read the files as before.
 */
import { getAsset, isSea } from 'node:sea';

/** The assets build-exe embeds, by key. */
export const ASSETS = {
  /** `{"cutover": version, "sigstoreTuf": version}` */
  versions: 'versions.json',
  /** @sigstore/tuf's seeds.json */
  tufSeeds: 'sigstore-tuf-seeds.json',
} as const;

/** True inside the single executable. */
export function inExecutable(): boolean {
  return isSea();
}

/** An embedded asset as text, or undefined outside the executable. */
export function embeddedText(key: string): string | undefined {
  return isSea() ? getAsset(key, 'utf8') : undefined;
}

/** The versions recorded at build time, or undefined outside the executable. */
export function embeddedVersions(): { cutover: string; sigstoreTuf: string } | undefined {
  const text = embeddedText(ASSETS.versions);
  return text === undefined ? undefined : (JSON.parse(text) as { cutover: string; sigstoreTuf: string });
}
