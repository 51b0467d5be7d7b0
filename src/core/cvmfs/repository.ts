// A CernVM-FS repository opened for reading: one verified revision, its catalogs attached on
// demand (doc §5), file content fetched lazily into the shared cache and verified on the way.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { log } from '../log.ts';
import { advanceBreadcrumb, readBreadcrumb } from './breadcrumb.ts';
import { ObjectCache, type ObjectCacheOptions } from './cache.ts';
import { Catalog, type ChunkRow, type StoredRow } from './catalog.ts';
import { DirectorySource } from './directory-source.ts';
import { contentAlgorithm, decodeEntry, FLAGS, type Entry } from './entry.ts';
import { CvmfsError } from './errors.ts';
import { formatContentHash, type ContentHash } from './hash.ts';
import { HttpSource } from './http-source.ts';
import type { Manifest } from './manifest.ts';
import type { ObjectSource } from './object-source.ts';
import { ObjectFetcher, type Compression } from './object-fetcher.ts';
import { OpenObjects } from './open-objects.ts';
import { normalizeRepositoryPath, parentPath } from './path-hash.ts';
import { expandServerUrls, parseProxyGroups } from './server-list.ts';
import { loadPublicKeys } from './signature.ts';
import { fetchTrustedRevision } from './trust.ts';
import type { SymlinkEnvironment } from './variant-symlink.ts';
import { parseFingerprint } from './whitelist.ts';

// A chunked file put together whole is cached under its content hash with this suffix, which no
// object name has.
const ASSEMBLED_KEY_SUFFIX = '.whole';
// How much of a chunked file is read from its chunks at a time while putting it together.
const ASSEMBLY_WINDOW = 8 << 20;

/** Where to read the repository from. */
export type RepositoryLocation =
  | { directory: string }
  | {
      /** CVMFS_SERVER_URL: ";"-separated or a list; @fqrn@ and @org@ are expanded. */
      serverUrls: string | readonly string[];
      /** CVMFS_HTTP_PROXY: ";" separates failover groups, "|" load-balances, DIRECT = none. */
      httpProxy?: string;
      /** CVMFS_TIMEOUT (through a proxy), seconds → ms. */
      proxyTimeoutMs?: number;
      /** CVMFS_TIMEOUT_DIRECT, seconds → ms. */
      directTimeoutMs?: number;
    }
  | { source: ObjectSource };

export interface RepositoryOptions {
  fqrn: string;
  location: RepositoryLocation;
  /** Public master key files (CVMFS_PUBLIC_KEY: ":"-separated, each file may hold several keys). */
  publicKeys: string | readonly string[];
  /** A shared cache, or where to open one. A cache passed in is not closed with the repository. */
  cache: ObjectCache | ObjectCacheOptions;
  /** Lines of /etc/cvmfs/blacklist: certificate fingerprints to refuse. */
  blacklist?: readonly string[];
  /** Clock for the whitelist expiry check. */
  now?: () => Date;
  /** Values for $(VAR) in symlink targets; the client uses its own environment. */
  symlinkEnvironment?: SymlinkEnvironment;
}

export class Repository {
  readonly fqrn: string;
  readonly manifest: Manifest;
  readonly #fetcher: ObjectFetcher;
  readonly #openObjects: OpenObjects;
  readonly #source: ObjectSource;
  readonly #cache: ObjectCache;
  /** Chunked files being put together whole, by cache key. */
  readonly #assembling = new Map<string, Promise<string | null>>();
  readonly #ownsCache: boolean;
  readonly #symlinkEnvironment: SymlinkEnvironment;
  /** Attached catalogs by mountpoint ("" = root). */
  readonly #catalogs = new Map<string, Catalog>();
  readonly #attaching = new Map<string, Promise<Catalog>>();

  private constructor(fqrn: string, manifest: Manifest, fetcher: ObjectFetcher, source: ObjectSource, cache: ObjectCache, ownsCache: boolean, environment: SymlinkEnvironment) {
    this.fqrn = fqrn;
    this.manifest = manifest;
    this.#fetcher = fetcher;
    this.#openObjects = new OpenObjects(fetcher);
    this.#source = source;
    this.#cache = cache;
    this.#ownsCache = ownsCache;
    this.#symlinkEnvironment = environment;
  }

  /** Fetches and verifies the current revision and its root catalog. */
  static async open(options: RepositoryOptions): Promise<Repository> {
    const publicKeys = await loadPublicKeys(options.publicKeys);
    const blacklist = (options.blacklist ?? []).map(parseFingerprint).filter((hash) => hash !== null);
    const source = createSource(options.location, options.fqrn);
    const ownsCache = !(options.cache instanceof ObjectCache);
    let cache;
    try {
      cache = options.cache instanceof ObjectCache ? options.cache : await ObjectCache.open(options.cache);
    } catch (error) {
      source.close();
      throw error;
    }
    let repository: Repository | undefined;
    try {
      const fetcher = new ObjectFetcher(source, cache);
      const { manifest } = await fetchTrustedRevision(fetcher, {
        fqrn: options.fqrn,
        publicKeys,
        blacklist,
        now: options.now?.() ?? new Date(),
        breadcrumb: await readBreadcrumb(cache.directory, options.fqrn),
      });
      repository = new Repository(options.fqrn, manifest, fetcher, source, cache, ownsCache, options.symlinkEnvironment ?? process.env);
      await repository.#attach({ mountpoint: '', hash: manifest.rootCatalog });
      await advanceBreadcrumb(cache.directory, options.fqrn, {
        rootCatalog: manifest.rootCatalog,
        revision: manifest.revision,
        publishedAt: manifest.publishedAt,
      });
      log.debug(`cvmfs: opened ${options.fqrn} revision ${manifest.revision} from ${source.description}`);
      return repository;
    } catch (error) {
      if (repository !== undefined) {
        repository.close();
      } else {
        source.close();
        if (ownsCache) cache.close();
      }
      throw error;
    }
  }

  get revision(): number {
    return this.manifest.revision;
  }

  get rootCatalogHash(): string {
    return formatContentHash(this.manifest.rootCatalog);
  }

  /** Metadata of one path; symlinks are not followed. */
  async lookup(path: string): Promise<Entry> {
    const { row, catalog } = await this.#resolve(normalizeRepositoryPath(path));
    return decodeEntry(row, catalog.mountpoint, this.#symlinkEnvironment);
  }

  /**
   * The entries of a directory, sorted by name. Hidden entries (like /.cvmfs), which lookup finds
   * but a listing does not show, are left out unless asked for.
   */
  async readdir(path: string, options: { hidden?: boolean } = {}): Promise<Entry[]> {
    const directory = normalizeRepositoryPath(path);
    const listing = await this.#catalogListing(directory);
    return listing
      .children(directory)
      .filter((child) => options.hidden === true || (child.flags & FLAGS.hidden) === 0)
      .map((child) => decodeEntry(child, listing.mountpoint, this.#symlinkEnvironment));
  }

  /** How many entries a directory has, hidden ones included, without reading them. */
  async countEntries(path: string): Promise<number> {
    const directory = normalizeRepositoryPath(path);
    return (await this.#catalogListing(directory)).countChildren(directory);
  }

  /** The catalog that holds the entries of `directory`. */
  async #catalogListing(directory: string): Promise<Catalog> {
    const { row, catalog } = await this.#resolve(directory);
    if ((row.mode & 0o170000) !== 0o040000) throw new CvmfsError('not-a-directory', `${directory || '/'} is not a directory`);
    // A mountpoint's contents live in the nested catalog, not in the parent that holds its row.
    return (row.flags & FLAGS.nestedMountpoint) !== 0 ? this.#attachNested(catalog, directory) : catalog;
  }

  async readlink(path: string): Promise<string> {
    const entry = await this.lookup(path);
    if (entry.symlink === null) throw new CvmfsError('not-a-symlink', `${entry.path} is not a symbolic link`);
    return entry.symlink;
  }

  async listxattr(path: string): Promise<string[]> {
    const entry = await this.lookup(path);
    return [...(entry.xattrs?.keys() ?? [])];
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const entry = await this.lookup(path);
    const value = entry.xattrs?.get(name);
    if (value === undefined) throw new CvmfsError('no-such-xattr', `${entry.path} has no extended attribute ${name}`);
    return value;
  }

  /**
   * Up to `length` bytes of a regular file from `offset` (fewer at the end of the file). Only the
   * objects (or, for chunked files, the chunks) overlapping the range are fetched.
   */
  async read(target: string | Entry, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(length) || length < 0) throw invalidRange(offset, length);
    const entry = await this.#readableFile(target, offset, length);
    // Unzeroed: the read fills every byte or fails.
    const buffer = Buffer.allocUnsafe(Math.max(0, Math.min(entry.size, offset + length) - offset));
    await this.#fill(entry, offset, buffer);
    return buffer;
  }

  /**
   * Like read, into `buffer` (as much of it as the file has from `offset`): the bytes read.
   * For callers that reuse one buffer for many reads, since a fresh one costs a page fault per
   * page it is filled with.
   */
  async readInto(target: string | Entry, offset: number, buffer: Buffer): Promise<number> {
    const entry = await this.#readableFile(target, offset, buffer.length);
    const length = Math.max(0, Math.min(buffer.length, entry.size - offset));
    await this.#fill(entry, offset, buffer.subarray(0, length));
    return length;
  }

  async #readableFile(target: string | Entry, offset: number, length: number): Promise<Entry> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalidRange(offset, length);
    const entry = typeof target === 'string' ? await this.lookup(target) : target;
    if (entry.type === 'dir') throw new CvmfsError('is-a-directory', `${entry.path} is a directory`);
    if (entry.type !== 'file') throw new CvmfsError('invalid-argument', `${entry.path} is a ${entry.type}, not a regular file`);
    if (entry.external) throw new CvmfsError('unsupported', `${entry.path} is an external file (CVMFS_EXTERNAL_URL), which this client cannot read`);
    return entry;
  }

  /** Fills `buffer` with the file's bytes from `offset`; the file has that many. */
  async #fill(entry: Entry, offset: number, buffer: Buffer): Promise<void> {
    if (buffer.length === 0) return;
    if (entry.chunked) return this.#fillChunked(entry, offset, buffer);
    if (entry.contentHash === null) throw new CvmfsError('bad-catalog', `${entry.path} is a non-empty file without a content hash`);
    await this.#openObjects.read(entry.contentHash, '', entry.compression, buffer, offset, entry.path);
  }

  /**
   * A file in the local cache that holds exactly the content of regular file `target`: its
   * object, fetched if need be, or for a chunked file one put together from its chunks (kept in
   * the cache like an object) once they are all cached. Null for an empty file, and for a chunked
   * one with chunks not fetched yet: fetching all of a big file to read a little of it would undo
   * what chunking is for. With `cachedOnly`, only a file that is there already: null rather than
   * fetching or putting together anything.
   */
  async localFile(target: string | Entry, options: { cachedOnly?: boolean } = {}): Promise<string | null> {
    const entry = await this.#readableFile(target, 0, 0);
    if (entry.size === 0) return null;
    const contentHash = entry.contentHash;
    const cachedOnly = options.cachedOnly === true;
    if (contentHash === null && !entry.chunked) throw new CvmfsError('bad-catalog', `${entry.path} is a non-empty file without a content hash`);
    const sizeOf = async (): Promise<{ path: string; size: number } | null> => {
      const path =
        contentHash === null || entry.chunked
          ? await this.#assembled(entry, !cachedOnly)
          : cachedOnly
            ? await this.#fetcher.findCached(contentHash)
            : await this.#fetcher.cachedPath(contentHash, '', entry.compression);
      return path === null ? null : { path, size: statSync(path).size };
    };
    // Evicted from the cache between lookup and stat: fetched again.
    const local = await sizeOf().catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      return sizeOf();
    });
    if (local === null) return null;
    const { path, size } = local;
    // Whoever reads it takes its end for the file's end.
    if (size !== entry.size) throw new CvmfsError('bad-data', `${entry.path}: its cached content ${path} holds ${size} bytes, the catalog gives ${entry.size}`);
    return path;
  }

  /** The whole content of a regular file. */
  async readFile(path: string): Promise<Buffer> {
    const entry = await this.lookup(path);
    return this.read(entry, 0, entry.size);
  }

  /** Closes the catalogs and connections (and the cache, if the repository opened it). */
  close(): void {
    this.#openObjects.closeAll();
    for (const catalog of this.#catalogs.values()) catalog.close();
    this.#catalogs.clear();
    this.#source.close();
    if (this.#ownsCache) this.#cache.close();
  }

  /**
   * The cached whole of chunked file `entry`, put together from its chunks the first time they
   * are all cached; null until then. Its name derives from the chunk list (a chunked file need
   * not have a content hash of its own), which names the content as well as a hash of it would:
   * every chunk is named by its hash. Without `assemble`, only one put together before.
   */
  async #assembled(entry: Entry, assemble: boolean): Promise<string | null> {
    const chunks = await this.#chunksCovering(entry, 0, entry.size);
    const list = chunks.map((chunk) => `${chunk.offset} ${chunk.size} ${formatContentHash(chunk.hash)}`).join('\n');
    const key = `${createHash('sha1').update(list).digest('hex')}${ASSEMBLED_KEY_SUFFIX}`;
    if (!assemble) return this.#cache.find(key);
    let assembling = this.#assembling.get(key);
    if (assembling === undefined) {
      assembling = this.#assemble(entry, key, chunks).finally(() => this.#assembling.delete(key));
      this.#assembling.set(key, assembling);
    }
    return assembling;
  }

  async #assemble(entry: Entry, key: string, chunks: readonly ChunkRow[]): Promise<string | null> {
    const cached = await this.#cache.find(key);
    if (cached !== null) return cached;
    for (const chunk of chunks) if ((await this.#cache.find(formatContentHash(chunk.hash))) === null) return null;
    return this.#cache.store(key, async (tempPath) => {
      const file = await open(tempPath, 'w');
      try {
        const window = Buffer.allocUnsafe(Math.min(entry.size, ASSEMBLY_WINDOW));
        for (let offset = 0; offset < entry.size; offset += window.length) {
          const piece = window.subarray(0, Math.min(window.length, entry.size - offset));
          await this.#fillChunked(entry, offset, piece);
          await file.write(piece, 0, piece.length, offset);
        }
      } finally {
        await file.close();
      }
    });
  }

  /** The chunks of `entry` that hold bytes start..end, which they must tile without gaps. */
  async #chunksCovering(entry: Entry, start: number, end: number): Promise<ChunkRow[]> {
    const catalog = await this.#catalogOf(entry);
    const chunks = catalog.chunksInRange(normalizeRepositoryPath(entry.path), start, end, contentAlgorithm(entry));
    // Otherwise the catalog is lying about the file.
    let covered = start;
    for (const chunk of chunks) {
      if (chunk.offset > covered) break;
      covered = Math.max(covered, chunk.offset + chunk.size);
    }
    if (chunks.length === 0 || chunks[0]!.offset > start || covered < end) {
      throw new CvmfsError('bad-catalog', `the chunk list of ${entry.path} does not cover bytes ${start}..${end}`);
    }
    return chunks;
  }

  async #fillChunked(entry: Entry, start: number, buffer: Buffer): Promise<void> {
    const end = start + buffer.length;
    const chunks = await this.#chunksCovering(entry, start, end);
    await Promise.all(
      chunks.map((chunk) => {
        const from = Math.max(start, chunk.offset);
        const to = Math.min(end, chunk.offset + chunk.size);
        return this.#openObjects.read(chunk.hash, 'P', entry.compression, buffer.subarray(from - start, to - start), from - chunk.offset, `${entry.path} chunk at ${chunk.offset}`);
      }),
    );
  }

  /** The catalog an entry came from; attached already unless the entry is from another instance. */
  async #catalogOf(entry: Entry): Promise<Catalog> {
    const mountpoint = normalizeRepositoryPath(entry.catalogMountpoint);
    return this.#catalogs.get(mountpoint) ?? (await this.#resolve(normalizeRepositoryPath(entry.path))).catalog;
  }

  /**
   * Finds the row for `path`, attaching nested catalogs on the way: start in the deepest attached
   * catalog above the path; if the row is missing there, descend into the nested catalog that
   * contains the path, if any. A mountpoint itself is answered by its parent's row.
   */
  async #resolve(path: string): Promise<{ row: StoredRow; catalog: Catalog }> {
    let catalog = this.#deepestCatalogAbove(path);
    for (;;) {
      const row = catalog.find(path);
      if (row !== undefined) return { row, catalog };
      const parent = parentPath(path);
      const parentRow = path === '' ? undefined : catalog.find(parent);
      if (parentRow !== undefined && (parentRow.mode & 0o170000) !== 0o040000) {
        throw new CvmfsError('not-a-directory', `${parent || '/'} is not a directory, so ${path} cannot exist`);
      }
      const nested = catalog.nestedCatalogContaining(path, false);
      if (nested === undefined) throw new CvmfsError('not-found', `${path || '/'} does not exist in ${this.fqrn} revision ${this.revision}`);
      catalog = await this.#attach(nested);
    }
  }

  #deepestCatalogAbove(path: string): Catalog {
    for (let candidate = parentPath(path); candidate !== ''; candidate = parentPath(candidate)) {
      const catalog = this.#catalogs.get(candidate);
      if (catalog !== undefined) return catalog;
    }
    const root = this.#catalogs.get('');
    if (root === undefined) throw new CvmfsError('invalid-argument', `repository ${this.fqrn} is closed`);
    return root;
  }

  async #attachNested(parent: Catalog, mountpoint: string): Promise<Catalog> {
    const nested = parent.nestedCatalogContaining(mountpoint, true);
    if (nested === undefined || nested.mountpoint !== mountpoint) {
      throw new CvmfsError('bad-catalog', `${mountpoint} is marked as a nested catalog mountpoint, but its parent catalog does not reference one`);
    }
    return this.#attach(nested);
  }

  /** Fetches (verified) and opens a catalog once, however many lookups ask for it at once. */
  #attach(reference: { mountpoint: string; hash: ContentHash }): Promise<Catalog> {
    const attached = this.#catalogs.get(reference.mountpoint);
    if (attached !== undefined) return Promise.resolve(attached);
    let attaching = this.#attaching.get(reference.mountpoint);
    if (attaching === undefined) {
      const compression: Compression = 'zlib'; // Catalogs are always zlib-compressed.
      attaching = this.#fetcher
        .withObject(reference.hash, 'C', compression, async (file) => {
          try {
            return new Catalog(file, reference.mountpoint, reference.hash);
          } catch (error) {
            // Evicted by another process before SQLite opened it: ENOENT makes withObject fetch it again.
            if (!existsSync(file)) throw Object.assign(new Error(`${file} was evicted before it was opened`), { code: 'ENOENT', cause: error });
            throw error;
          }
        })
        .then((catalog) => {
          this.#catalogs.set(reference.mountpoint, catalog);
          return catalog;
        })
        .finally(() => this.#attaching.delete(reference.mountpoint));
      this.#attaching.set(reference.mountpoint, attaching);
    }
    return attaching;
  }
}

/** The ObjectSource for a location: its storage directory, or its mirrors over HTTP. */
export function createSource(location: RepositoryLocation, fqrn: string): ObjectSource {
  if ('source' in location) return location.source;
  if ('directory' in location) return new DirectorySource(location.directory);
  return new HttpSource({
    servers: expandServerUrls(location.serverUrls, fqrn),
    proxyGroups: parseProxyGroups(location.httpProxy),
    proxyTimeoutMs: location.proxyTimeoutMs,
    directTimeoutMs: location.directTimeoutMs,
  });
}

function invalidRange(offset: number, length: number): CvmfsError {
  return new CvmfsError('invalid-argument', `invalid read range: offset ${offset}, length ${length}`);
}
