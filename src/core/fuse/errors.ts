import { constants } from 'node:os';

/** Linux errno numbers by name (ENOENT, EIO, ENODATA …), for building FuseErrors. */
export const errno = constants.errno;

/**
 * What a filesystem throws to answer a request with an errno (ENOENT for a missing name, ENODATA
 * for a missing xattr …). Anything else a handler throws is a bug: the kernel gets EIO and the
 * server logs it.
 */
export class FuseError extends Error {
  readonly errno: number;

  constructor(code: number, message?: string) {
    super(message ?? `errno ${code}`);
    this.name = 'FuseError';
    this.errno = code;
  }
}
