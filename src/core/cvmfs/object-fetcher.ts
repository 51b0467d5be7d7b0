// Gets objects into the cache: download, hash the compressed stream while inflating it into a
// temp file, and publish the file under its hash only when the hash matched. Objects already in
// the cache are trusted, as in the client: they were verified when they were stored.
import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflate } from 'node:zlib';
import { log } from '../log.ts';
import type { ObjectCache } from './cache.ts';
import { CvmfsError, describeError } from './errors.ts';
import { createContentHasher, formatContentHash, objectPath, type ContentHash, type ObjectSuffix } from './hash.ts';
import type { ObjectSource } from './object-source.ts';

export type Compression = 'zlib' | 'none';

// The manifest and whitelist are a few hundred bytes; refuse anything absurd.
const MAX_METADATA_BYTES = 1 << 20;

export class ObjectFetcher {
  readonly #source: ObjectSource;
  readonly #cache: ObjectCache;
  /** Downloads in progress, so concurrent readers of one object share one download. */
  readonly #inFlight = new Map<string, Promise<string>>();

  constructor(source: ObjectSource, cache: ObjectCache) {
    this.#source = source;
    this.#cache = cache;
  }

  /**
   * Runs `use` with the path of the verified, decompressed object. Another process may evict the
   * file between our lookup and `use` opening it; then it is fetched once more.
   */
  async withObject<T>(hash: ContentHash, suffix: ObjectSuffix, compression: Compression, use: (path: string) => Promise<T>): Promise<T> {
    const path = await this.cachedPath(hash, suffix, compression);
    try {
      return await use(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return use(await this.cachedPath(hash, suffix, compression));
    }
  }

  async cachedPath(hash: ContentHash, suffix: ObjectSuffix, compression: Compression): Promise<string> {
    const cached = await this.findCached(hash);
    if (cached !== null) return cached;
    const key = formatContentHash(hash);
    let download = this.#inFlight.get(key);
    if (download === undefined) {
      download = this.#download(key, hash, suffix, compression).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, download);
    }
    return download;
  }

  /** The object's path in the cache, or null when it is not there (nothing is fetched). */
  findCached(hash: ContentHash): Promise<string | null> {
    return this.#cache.find(formatContentHash(hash));
  }

  /** An unhashed repository file (manifest, whitelist), whole; its signature is checked by the caller. */
  async fetchMetadata(relativePath: string): Promise<{ data: Buffer; location: string }> {
    return this.#source.fetch(relativePath, async (body, location) => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_METADATA_BYTES) throw new CvmfsError('bad-data', `${location} is larger than ${MAX_METADATA_BYTES} bytes`);
        chunks.push(chunk);
      }
      return { data: Buffer.concat(chunks), location };
    });
  }

  #download(key: string, hash: ContentHash, suffix: ObjectSuffix, compression: Compression): Promise<string> {
    const path = objectPath(hash, suffix);
    return this.#cache.store(key, (tempPath) =>
      this.#source.fetch(path, async (body, location) => {
        await receiveVerified(body, tempPath, hash, compression, location);
        log.debug(`cvmfs: fetched ${location}`);
      }),
    );
  }
}

async function receiveVerified(body: Readable, tempPath: string, hash: ContentHash, compression: Compression, location: string): Promise<void> {
  const hasher = createContentHasher(hash.algorithm);
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hasher.update(chunk);
      done(null, chunk);
    },
  });
  const inflate = compression === 'zlib' ? [createInflate()] : [];
  try {
    await pipeline(body, hashing, ...inflate, createWriteStream(tempPath));
  } catch (error) {
    // zlib errors carry an errno but no syscall; everything else (network, disk) is passed on as is.
    if (inflate.length > 0 && (error as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new CvmfsError('bad-data', `${location}: damaged, not a valid zlib stream (${describeError(error)}); none of it was used`, { cause: error });
    }
    throw error;
  }
  const actual = hasher.digest('hex');
  if (actual !== hash.hex) {
    throw new CvmfsError(
      'bad-data',
      `${location}: damaged, its ${hash.algorithm} hash is ${actual} but the repository references ${hash.hex}; none of it was used`,
    );
  }
}
