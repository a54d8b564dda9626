/**
 * What a release signature must prove before cutover trusts it. Pure data: built from the
 * config's `[trust]` table once the version is known, handed to `verifyArtifact`.
 */
export interface VerifyPolicy {
  /** Exact certificate SAN (URI or email), `{version}` already substituted. */
  identity: string;
  /** Exact OIDC issuer recorded in the certificate. */
  issuer: string;
  /** Require at least one verified transparency-log entry. */
  requireTlog: boolean;
  /** Require at least one trusted timestamp (tlog integrated time or RFC 3161). */
  requireTimestamp: boolean;
}

/**
 * Substitute `{version}` in an identity template, e.g.
 * `https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v{version}`.
 * The version is used without a leading `v` (the template carries it if wanted).
 */
export function expandIdentity(template: string, version: string): string {
  const bare = version.startsWith('v') ? version.slice(1) : version;
  return template.replaceAll('{version}', bare);
}
