// One error type for everything the CernVM-FS reader refuses, so callers (the FUSE server maps
// `code` to an errno, the CLI prints `message`) never have to parse message text.

export type CvmfsErrorCode =
  // Path operations, as a file system would report them.
  | 'not-found'
  | 'not-a-directory'
  | 'is-a-directory'
  | 'not-a-symlink'
  | 'no-such-xattr'
  | 'invalid-argument'
  // Trust: the repository's signed metadata did not verify.
  | 'bad-manifest'
  | 'bad-signature'
  | 'bad-whitelist'
  | 'outdated'
  // Data: an object or catalog is damaged or does not match its hash.
  | 'bad-data'
  | 'bad-catalog'
  // Transport and setup.
  | 'unreachable'
  | 'config'
  | 'unsupported'
  // Publishing: another process holds the publisher's lock.
  | 'busy';

export class CvmfsError extends Error {
  readonly code: CvmfsErrorCode;

  constructor(code: CvmfsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CvmfsError';
    this.code = code;
  }
}

export function isCvmfsError(error: unknown, code?: CvmfsErrorCode): error is CvmfsError {
  return error instanceof CvmfsError && (code === undefined || error.code === code);
}

/** The message of anything thrown, for composing error texts. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
