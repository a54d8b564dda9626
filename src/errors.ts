/**
 * The one error type cutover throws on purpose. Every code is stable, documented in
 * docs/errors.md, and maps to exactly one exit code. Messages say what is wrong; `hint`
 * says what to do about it.
 */

export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  VERIFY: 3,
  NETWORK: 4,
  ARCHIVE: 5,
  FILESYSTEM: 6,
  LOCKED: 7,
  UNHEALTHY: 8,
  ROLLBACK_FAILED: 9,
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Every code cutover can report, with its exit code. Keep docs/errors.md in step. */
export const CODES = {
  E_INTERNAL: EXIT.INTERNAL,

  E_USAGE: EXIT.USAGE,
  E_CONFIG: EXIT.USAGE,
  E_CONFIG_MISSING: EXIT.USAGE,
  E_VERSION_UNKNOWN: EXIT.USAGE,

  E_SIG_BUNDLE: EXIT.VERIFY,
  E_SIG_INVALID: EXIT.VERIFY,
  E_SIG_IDENTITY: EXIT.VERIFY,
  E_SIG_ISSUER: EXIT.VERIFY,
  E_SIG_UNTRUSTED: EXIT.VERIFY,
  E_SIG_TRUST_ROOT: EXIT.VERIFY,
  E_DIGEST_MISMATCH: EXIT.VERIFY,
  E_DOWNGRADE: EXIT.VERIFY,
  E_PREFLIGHT: EXIT.VERIFY,
  E_INDEX_MISMATCH: EXIT.VERIFY,
  E_ROLLBACK_SCHEMA: EXIT.VERIFY,
  E_BACKUP_SCHEMA: EXIT.VERIFY,
  E_SCHEMA_MANUAL: EXIT.VERIFY,
  E_INDEX_DIGEST_CHANGED: EXIT.VERIFY,
  E_RELEASE_MODIFIED: EXIT.VERIFY,

  E_NET: EXIT.NETWORK,
  E_NET_TIMEOUT: EXIT.NETWORK,
  E_NET_STATUS: EXIT.NETWORK,
  E_NET_SIZE: EXIT.NETWORK,
  E_NET_REDIRECT: EXIT.NETWORK,
  E_NET_TLS: EXIT.NETWORK,
  E_NET_SLOW: EXIT.NETWORK,
  E_INDEX_INVALID: EXIT.NETWORK,

  E_ARCHIVE_UNSAFE: EXIT.ARCHIVE,
  E_ARCHIVE_CORRUPT: EXIT.ARCHIVE,
  E_ARCHIVE_LIMIT: EXIT.ARCHIVE,
  E_RELEASE_MANIFEST: EXIT.ARCHIVE,
  E_SCHEMA_DOWNGRADE: EXIT.ARCHIVE,
  E_UPGRADE_PATH: EXIT.ARCHIVE,

  E_FS: EXIT.FILESYSTEM,
  E_NO_SPACE: EXIT.FILESYSTEM,
  E_LAYOUT: EXIT.FILESYSTEM,
  E_NOT_INSTALLED: EXIT.FILESYSTEM,
  E_NO_PREVIOUS: EXIT.FILESYSTEM,
  E_UNSAFE_PATH: EXIT.FILESYSTEM,
  E_RELEASE_DAMAGED: EXIT.FILESYSTEM,
  E_BACKUP_FAILED: EXIT.FILESYSTEM,
  E_BACKUP_CORRUPT: EXIT.FILESYSTEM,
  E_DOCTOR: EXIT.FILESYSTEM,

  E_LOCKED: EXIT.LOCKED,

  E_UNHEALTHY: EXIT.UNHEALTHY,
  E_MIGRATE_FAILED: EXIT.UNHEALTHY,
  E_ROLLBACK_FAILED: EXIT.ROLLBACK_FAILED,

  E_INTERRUPTED: EXIT.INTERRUPTED,
} as const;

export type ErrorCode = keyof typeof CODES;

export interface CutoverErrorOptions {
  /** What the operator should do next. One sentence. */
  hint?: string;
  cause?: unknown;
  /** Structured facts for --json output. */
  details?: Record<string, unknown>;
}

export class CutoverError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: CutoverErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CutoverError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  get exitCode(): ExitCode {
    return CODES[this.code];
  }

  /** The one line an operator sees. */
  toLine(): string {
    return this.hint ? `${this.code}: ${this.message}; ${this.hint}` : `${this.code}: ${this.message}`;
  }
}

/** Node system errors carry `code` (ENOENT, ENOSPC, ...). */
export function errnoCode(e: unknown): string | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof e.code === 'string') {
    return (e as { code: string }).code;
  }
  return undefined;
}

/** Wrap a filesystem failure into E_FS / E_NO_SPACE with a useful message. */
export function fsError(action: string, path: string, cause: unknown): CutoverError {
  const errno = errnoCode(cause);
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new CutoverError('E_NO_SPACE', `no space left while trying to ${action} ${path}`, {
      hint: 'free disk space on that filesystem (or run `gc`) and retry',
      cause,
    });
  }
  if (errno === 'ELOOP') {
    return new CutoverError('E_UNSAFE_PATH', `cannot ${action} ${path}: it is a symbolic link where cutover keeps a file of its own`, {
      hint: 'someone planted a link there; remove it (cutover never follows it) and check who can write that directory',
      cause,
    });
  }
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CutoverError('E_FS', `cannot ${action} ${path}: ${reason}`, {
    hint:
      errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS'
        ? 'run as a user that can write the install root (usually with sudo)'
        : 'check the path and its permissions, then retry',
    cause,
  });
}
