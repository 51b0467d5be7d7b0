// Content hashes as CernVM-FS writes them: lowercase hex of the digest followed by an algorithm id
// ("" for SHA-1, "-rmd160", "-shake128"). Objects are named by the hash of their *compressed*
// bytes, i.e. exactly what the server sends.
import { createHash, type Hash } from 'node:crypto';
import { CvmfsError } from './errors.ts';

export type HashAlgorithm = 'sha1' | 'rmd160' | 'shake128';

export interface ContentHash {
  algorithm: HashAlgorithm;
  /** Lowercase hex of the 20-byte digest, without the algorithm id. */
  hex: string;
}

/** Object type letters appended to object file names (never to hashes stored in catalogs). */
export type ObjectSuffix = '' | 'C' | 'P' | 'H' | 'X' | 'M';

const ALGORITHM_IDS: Record<HashAlgorithm, string> = { sha1: '', rmd160: '-rmd160', shake128: '-shake128' };

// Catalog flags store `enum - 1` in bits 8..10, where the enum is MD5=0, SHA-1=1, RMD160=2, SHAKE128=3.
const ALGORITHMS_BY_FLAG_VALUE: readonly HashAlgorithm[] = ['sha1', 'rmd160', 'shake128'];

const DIGEST_HEX = /^[0-9a-f]{40}$/;

export function formatContentHash(hash: ContentHash): string {
  return hash.hex + ALGORITHM_IDS[hash.algorithm];
}

/** Parses `hex[-id]` the way the client does: the algorithm follows from the length and id. */
export function parseContentHash(text: string): ContentHash {
  for (const [algorithm, id] of Object.entries(ALGORITHM_IDS) as [HashAlgorithm, string][]) {
    if (text.length !== 40 + id.length || !text.endsWith(id)) continue;
    const hex = text.slice(0, 40);
    if (DIGEST_HEX.test(hex)) return { algorithm, hex };
  }
  throw new CvmfsError('bad-data', `"${text}" is not a CernVM-FS content hash (40 lowercase hex digits, optionally -rmd160 or -shake128)`);
}

export function contentHashFromDigest(algorithm: HashAlgorithm, digest: Uint8Array): ContentHash {
  if (digest.length !== 20) {
    throw new CvmfsError('bad-catalog', `a ${algorithm} content hash must be 20 bytes, the catalog holds ${digest.length}`);
  }
  // A view, not a copy: listings decode thousands of these.
  return { algorithm, hex: Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex') };
}

/** Names accepted for a repository's content hash, as `cvmfs_server mkfs -a` spells them. */
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ALGORITHMS_BY_FLAG_VALUE;

export function algorithmFromFlagValue(value: number): HashAlgorithm {
  const algorithm = ALGORITHMS_BY_FLAG_VALUE[value];
  if (algorithm === undefined) throw new CvmfsError('unsupported', `unknown content hash algorithm number ${value + 1} in catalog flags`);
  return algorithm;
}

/** The value of flags bits 8..10 for rows hashed with `algorithm` (inverse of algorithmFromFlagValue). */
export function algorithmFlagValue(algorithm: HashAlgorithm): number {
  return ALGORITHMS_BY_FLAG_VALUE.indexOf(algorithm);
}

/** How to hash and name objects where this module cannot be imported (worker threads run plain source). */
export interface HashRecipe {
  /** Node's name of the digest. */
  digest: string;
  /** For the extendable-output SHAKE128: the digest's length in bytes. */
  outputLength: number | undefined;
  /** The algorithm id that follows the hex digits in object names. */
  id: string;
}

const RECIPES: Record<HashAlgorithm, HashRecipe> = {
  sha1: { digest: 'sha1', outputLength: undefined, id: ALGORITHM_IDS.sha1 },
  rmd160: { digest: 'ripemd160', outputLength: undefined, id: ALGORITHM_IDS.rmd160 },
  shake128: { digest: 'shake128', outputLength: 20, id: ALGORITHM_IDS.shake128 },
};

export function hashRecipe(algorithm: HashAlgorithm): HashRecipe {
  return RECIPES[algorithm];
}

export function createContentHasher(algorithm: HashAlgorithm): Hash {
  const { digest, outputLength } = RECIPES[algorithm];
  return createHash(digest, outputLength === undefined ? undefined : { outputLength });
}

export function hashBytes(algorithm: HashAlgorithm, data: Uint8Array): ContentHash {
  return { algorithm, hex: createContentHasher(algorithm).update(data).digest('hex') };
}

/** Path of an object below the repository base URL: `data/XX/<rest of hex and id><suffix>`. */
export function objectPath(hash: ContentHash, suffix: ObjectSuffix): string {
  const name = formatContentHash(hash);
  return `data/${name.slice(0, 2)}/${name.slice(2)}${suffix}`;
}
