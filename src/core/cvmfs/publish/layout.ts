// A publisher directory: everything needed to publish a repository, with only `storage/` meant
// for the web server.
//   publisher.json  name, storage location, hash algorithm, whitelist validity, chunking
//   keys/           0700: <fqrn>.masterkey, .key (private), .crt, .pub; never serve this
//   storage/        the repository as clients fetch it: .cvmfspublished, .cvmfswhitelist,
//                   .cvmfsreflog, data/XX/…; serve it as http://host/cvmfs/<fqrn>/
//   txn/            work files of the publish in progress (same file system as storage/, so
//                   everything is renamed into place); emptied at the start of every publish
//   lock            pid of the process publishing right now
// `storage` may point elsewhere (an existing repository adopted with its keys), as long as it
// is on the same file system as the publisher directory.
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { CvmfsError, describeError } from '../errors.ts';
import { HASH_ALGORITHMS, type HashAlgorithm } from '../hash.ts';
import { checkChunkSizes, type ChunkSizes } from './chunker.ts';

export const CONFIG_FILE = 'publisher.json';

export interface PublisherConfig {
  fqrn: string;
  /** Storage directory, absolute or relative to the publisher directory. */
  storage: string;
  hashAlgorithm: HashAlgorithm;
  /** Validity of a whitelist made by init or resign (cvmfs_server's default is 30 days). */
  whitelistDays: number;
  /** Chunk sizes for large files; null stores every file whole, as `cvmfs_server ingest` does. */
  chunking: ChunkSizes | null;
  /** zlib level of new objects, 1..9; absent means zlib's default (6), as cvmfs. */
  compressionLevel?: number;
}

export interface PublisherPaths {
  root: string;
  config: string;
  keys: string;
  storage: string;
  txn: string;
  lock: string;
}

export function publisherPaths(root: string, storage: string): PublisherPaths {
  const absoluteRoot = resolve(root);
  return {
    root: absoluteRoot,
    config: join(absoluteRoot, CONFIG_FILE),
    keys: join(absoluteRoot, 'keys'),
    storage: isAbsolute(storage) ? storage : join(absoluteRoot, storage),
    txn: join(absoluteRoot, 'txn'),
    lock: join(absoluteRoot, 'lock'),
  };
}

export async function readPublisherConfig(root: string): Promise<{ config: PublisherConfig; paths: PublisherPaths }> {
  const file = join(resolve(root), CONFIG_FILE);
  let config: PublisherConfig;
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as PublisherConfig;
  } catch (error) {
    throw new CvmfsError('config', `${root} is not a publisher directory (cannot read ${file}: ${describeError(error)}); create one with "repo init"`, { cause: error });
  }
  if (typeof config.fqrn !== 'string' || typeof config.storage !== 'string' || !HASH_ALGORITHMS.includes(config.hashAlgorithm) || !(config.whitelistDays > 0)) {
    throw new CvmfsError('config', `${file} lacks fqrn, storage, hashAlgorithm (${HASH_ALGORITHMS.join('|')}) or a positive whitelistDays`);
  }
  if (config.chunking !== null) checkChunkSizes(config.chunking);
  if (config.compressionLevel !== undefined && !(Number.isInteger(config.compressionLevel) && config.compressionLevel >= 1 && config.compressionLevel <= 9)) {
    throw new CvmfsError('config', `${file}: compressionLevel must be an integer from 1 to 9`);
  }
  return { config, paths: publisherPaths(root, config.storage) };
}
