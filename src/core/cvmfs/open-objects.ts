import { open, type FileHandle } from 'node:fs/promises';
import { CvmfsError } from './errors.ts';
import { formatContentHash, type ContentHash, type ObjectSuffix } from './hash.ts';
import type { Compression, ObjectFetcher } from './object-fetcher.ts';

// Cached objects kept open for reading. A file read through FUSE arrives in 128 KiB pieces;
// looking its object up in the cache and opening it for every piece cost more than the reads.
// An object evicted from the cache while open stays readable through its descriptor.

interface OpenObject {
  handle: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

const DEFAULT_LIMIT = 64;

export class OpenObjects {
  readonly #fetcher: ObjectFetcher;
  readonly #limit: number;
  /** In least-recently-used order: the first entry goes first. */
  readonly #objects = new Map<string, OpenObject>();

  constructor(fetcher: ObjectFetcher, limit = DEFAULT_LIMIT) {
    this.#fetcher = fetcher;
    this.#limit = limit;
  }

  /** Fills `target` from the object's decompressed bytes at `position`. */
  async read(hash: ContentHash, suffix: ObjectSuffix, compression: Compression, target: Buffer, position: number, what: string): Promise<void> {
    const object = this.#acquire(hash, suffix, compression);
    try {
      const handle = await object.handle;
      let filled = 0;
      while (filled < target.length) {
        const { bytesRead } = await handle.read(target, filled, target.length - filled, position + filled);
        if (bytesRead === 0) {
          throw new CvmfsError('bad-data', `${what}: object ${formatContentHash(hash)} ends before the size the catalog gives`);
        }
        filled += bytesRead;
      }
    } finally {
      this.#release(object);
    }
  }

  #acquire(hash: ContentHash, suffix: ObjectSuffix, compression: Compression): OpenObject {
    const key = `${formatContentHash(hash)}${suffix}`;
    let object = this.#objects.get(key);
    if (object) {
      this.#objects.delete(key);
    } else {
      const handle = this.#openCached(hash, suffix, compression);
      object = { handle, users: 0, evicted: false };
      const failed = object;
      handle.catch(() => {
        if (this.#objects.get(key) === failed) this.#objects.delete(key);
      });
    }
    this.#objects.set(key, object);
    object.users++;
    while (this.#objects.size > this.#limit) {
      const [oldestKey, oldest] = this.#objects.entries().next().value!;
      this.#objects.delete(oldestKey);
      oldest.evicted = true;
      if (oldest.users === 0) void this.#close(oldest);
    }
    return object;
  }

  #release(object: OpenObject): void {
    object.users--;
    if (object.evicted && object.users === 0) void this.#close(object);
  }

  async #openCached(hash: ContentHash, suffix: ObjectSuffix, compression: Compression): Promise<FileHandle> {
    try {
      return await open(await this.#fetcher.cachedPath(hash, suffix, compression), 'r');
    } catch (error) {
      // Evicted from the cache between lookup and open: fetch it again.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return open(await this.#fetcher.cachedPath(hash, suffix, compression), 'r');
    }
  }

  async #close(object: OpenObject): Promise<void> {
    await object.handle.then((handle) => handle.close(), () => undefined);
  }

  closeAll(): void {
    for (const object of this.#objects.values()) {
      object.evicted = true;
      if (object.users === 0) void this.#close(object);
    }
    this.#objects.clear();
  }
}
