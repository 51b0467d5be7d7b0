// One error type for everything the registry client refuses or fails at, so callers (make-thin
// prints `message`, tests and retries look at `code`) never have to parse message text.

export type RegistryErrorCode =
  // The caller's input.
  | 'bad-reference'
  | 'invalid-argument'
  // Access: a login is needed or was refused, or the login lacks the right.
  | 'unauthorized'
  | 'denied'
  // Docker's config.json or a credential helper is broken.
  | 'credentials'
  | 'not-found'
  | 'no-matching-platform'
  // Content that does not verify or does not parse.
  | 'bad-digest'
  | 'bad-manifest'
  | 'bad-config'
  | 'unsupported'
  // Transport: `unreachable` (no answer, or the connection broke) and `unavailable` (5xx, 429)
  // are worth retrying; `protocol` (an answer that breaks the API) is not.
  | 'unreachable'
  | 'unavailable'
  | 'protocol';

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;

  constructor(code: RegistryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryError';
    this.code = code;
  }
}

export function isRegistryError(error: unknown, code?: RegistryErrorCode): error is RegistryError {
  return error instanceof RegistryError && (code === undefined || error.code === code);
}

/** Failures that another attempt may not hit: the network or an overloaded server. */
export function isTransient(error: unknown): boolean {
  return isRegistryError(error, 'unreachable') || isRegistryError(error, 'unavailable');
}
