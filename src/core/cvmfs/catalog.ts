// One catalog: a SQLite file (schema 2.5) listing the entries of a subtree, opened read-only
// from the cache. Rows are found by the MD5 of their full path (doc §2). A catalog mounted at M
// stores paths below its `root_prefix`, which normally equals M (doc §2.2); lookups are
// translated so that callers always speak repository paths.
import { pathToFileURL } from 'node:url';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { CvmfsError, describeError } from './errors.ts';
import { contentHashFromDigest, formatContentHash, parseContentHash, type ContentHash, type HashAlgorithm } from './hash.ts';
import { pathHash, type PathHash } from './path-hash.ts';

export interface CatalogRow {
  /** Repository path ("" for the root) the row was looked up as. */
  path: string;
  name: string;
  hardlinks: bigint;
  hash: Uint8Array | null;
  size: number;
  mode: number;
  mtime: number;
  mtimeNs: number | null;
  flags: number;
  symlink: string;
  uid: number;
  gid: number;
  xattr: Uint8Array | null;
}

/** A row as read back from a catalog file. */
export interface StoredRow extends CatalogRow {
  /** md5path_1 of the row's repository path (the first 8 bytes of its MD5, doc §2): what its inode derives from. */
  md5path1: bigint;
}

export interface NestedCatalogReference {
  mountpoint: string;
  hash: ContentHash;
  /** Uncompressed size; a hint only. */
  size: number | null;
}

export interface ChunkRow {
  offset: number;
  size: number;
  hash: ContentHash;
}

// The client reads schema 2.5 (current) and 2.4; older "legacy" catalogs use other columns.
const CATALOG_MMAP_BYTES = 1024 * 1024 * 1024;
const SUPPORTED_SCHEMAS = [2.4, 2.5];

type SqlRow = Record<string, unknown>;

export class Catalog {
  readonly mountpoint: string;
  readonly hash: ContentHash;
  readonly #file: string;
  readonly #rootPrefix: string;
  readonly #properties: ReadonlyMap<string, string>;
  readonly #database: DatabaseSync;
  readonly #entryByPath: StatementSync;
  readonly #entriesByParent: StatementSync;
  readonly #childCount: StatementSync;
  readonly #nestedByPath: StatementSync;
  readonly #chunksInRange: StatementSync;

  /** Opens a verified, decompressed catalog file; `mountpoint` is "" for the root catalog. */
  constructor(file: string, mountpoint: string, hash: ContentHash) {
    this.mountpoint = mountpoint;
    this.hash = hash;
    this.#file = file;
    const where = this.#describe();
    try {
      // immutable: cached objects never change, so SQLite may skip locking and journal checks.
      const url = pathToFileURL(file);
      url.search = 'immutable=1';
      this.#database = new DatabaseSync(url, { readOnly: true });
      // Lookups hit random pages; mapping the file spares a read() per page that missed SQLite's small cache.
      this.#database.exec(`PRAGMA mmap_size = ${CATALOG_MMAP_BYTES}`);
    } catch (error) {
      throw this.#damaged(error);
    }
    try {
      const properties = (this.#properties = new Map(
        (this.#database.prepare('SELECT key, value FROM properties').all() as { key: string; value: unknown }[]).map((row) => [row.key, String(row.value)]),
      ));
      const schema = Number(properties.get('schema') ?? '1.0');
      if (!SUPPORTED_SCHEMAS.some((supported) => Math.abs(schema - supported) < 0.0005)) {
        throw new CvmfsError('unsupported', `${where} has catalog schema ${schema}; only 2.4 and 2.5 are supported`);
      }
      const schemaRevision = Number(properties.get('schema_revision') ?? '0');
      this.#rootPrefix = properties.get('root_prefix') ?? mountpoint;
      const columns = storedRowColumns(schemaRevision);
      this.#entryByPath = this.#database.prepare(`SELECT ${columns} FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?`);
      // SQLite's default (BINARY) collation compares names bytewise, as `ls` does in the C locale.
      this.#entriesByParent = this.#database.prepare(`SELECT ${columns} FROM catalog WHERE parent_1 = ? AND parent_2 = ? ORDER BY name`);
      this.#childCount = this.#database.prepare('SELECT COUNT(*) AS count FROM catalog WHERE parent_1 = ? AND parent_2 = ?');
      for (const statement of [this.#entryByPath, this.#entriesByParent]) {
        statement.setReadBigInts(true);
        // Arrays cost less to build than objects, which counts in listings of thousands of rows.
        statement.setReturnArrays(true);
      }
      this.#nestedByPath = this.#database.prepare('SELECT sha1, size FROM nested_catalogs WHERE path = ?');
      this.#chunksInRange = this.#database.prepare(
        'SELECT offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ? AND offset < ? AND offset + size > ? ORDER BY offset',
      );
      if (this.#entryByPath.get(...pathHash(this.#rootPrefix)) === undefined) {
        throw new CvmfsError('bad-catalog', `${where} has no entry for its own root directory "${this.#rootPrefix || '/'}"`);
      }
    } catch (error) {
      this.#database.close();
      throw error instanceof CvmfsError ? error : this.#damaged(error);
    }
  }

  find(path: string): StoredRow | undefined {
    const values = this.#query(() => this.#entryByPath.get(...this.#storedHash(path))) as unknown[] | undefined;
    return values === undefined ? undefined : this.#toRepositoryRow(toStoredRow(values, path));
  }

  /** Entries whose parent is `path`, sorted by name (bytewise, as `ls` in the C locale). */
  children(path: string): StoredRow[] {
    const rows = this.#query(() => this.#entriesByParent.all(...this.#storedHash(path))) as unknown as unknown[][];
    return rows.map((values) => this.#toRepositoryRow(toStoredRow(values, `${path}/${String(values[0])}`)));
  }

  /** How many entries `children(path)` would return, without reading them. */
  countChildren(path: string): number {
    return Number(this.#query(() => this.#childCount.get(...this.#storedHash(path)))!.count);
  }

  /**
   * The nested catalog that holds `path`, i.e. mounted at `path` itself or at one of its
   * ancestors below this catalog's mountpoint (doc §5, lookup step 3).
   */
  nestedCatalogContaining(path: string, includeSelf: boolean): NestedCatalogReference | undefined {
    let candidate = includeSelf ? path : path.slice(0, path.lastIndexOf('/'));
    while (candidate.length > this.mountpoint.length) {
      const found = this.#query(() => this.#nestedByPath.get(this.#stored(candidate)));
      if (found !== undefined) return this.#reference(candidate, found);
      candidate = candidate.slice(0, candidate.lastIndexOf('/'));
    }
    return undefined;
  }

  /** Chunks of a chunked file overlapping [start, end), in file order. */
  chunksInRange(path: string, start: number, end: number, algorithm: HashAlgorithm): ChunkRow[] {
    const rows = this.#query(() => this.#chunksInRange.all(...this.#storedHash(path), end, start));
    return rows.map((row) => ({
      offset: Number(row.offset),
      size: Number(row.size),
      hash: contentHashFromDigest(algorithm, row.hash as Uint8Array),
    }));
  }

  /** The path its entries are stored under (the `root_prefix` property, else the mountpoint). */
  get rootPrefix(): string {
    return this.#rootPrefix;
  }

  /** The `properties` table (schema, revision, last_modified, …). */
  get properties(): ReadonlyMap<string, string> {
    return this.#properties;
  }

  /** The `statistics` table: counter name → value. */
  statistics(): Map<string, number> {
    const rows = this.#query(() => this.#database.prepare('SELECT counter, value FROM statistics').all());
    return new Map(rows.map((row) => [String(row.counter), Number(row.value)]));
  }

  /** Every nested catalog this catalog references directly. */
  nestedCatalogs(): NestedCatalogReference[] {
    const rows = this.#query(() => this.#database.prepare('SELECT path, sha1, size FROM nested_catalogs').all());
    return rows.map((row) => this.#reference(String(row.path), row));
  }

  /** Number of rows in the `catalog` table. */
  rowCount(): number {
    return Number(this.#query(() => this.#database.prepare('SELECT COUNT(*) AS count FROM catalog').get())!.count);
  }

  close(): void {
    if (this.#database.isOpen) this.#database.close();
  }

  #reference(mountpoint: string, row: SqlRow): NestedCatalogReference {
    try {
      return { mountpoint, hash: parseContentHash(String(row.sha1)), size: row.size === null ? null : Number(row.size) };
    } catch (error) {
      throw new CvmfsError('bad-catalog', `${this.#describe()} references nested catalog ${mountpoint} by a malformed hash`, { cause: error });
    }
  }

  #stored(path: string): string {
    return this.#rootPrefix === this.mountpoint ? path : this.#rootPrefix + path.slice(this.mountpoint.length);
  }

  /** A row stored under another root prefix carries the hash of that path, not of its repository path. */
  #toRepositoryRow(row: StoredRow): StoredRow {
    if (this.#rootPrefix !== this.mountpoint) row.md5path1 = pathHash(row.path)[0];
    return row;
  }

  #storedHash(path: string): PathHash {
    return pathHash(this.#stored(path));
  }

  #query<T>(run: () => T): T {
    try {
      return run();
    } catch (error) {
      throw this.#damaged(error);
    }
  }

  #describe(): string {
    return `catalog ${formatContentHash(this.hash)} (mounted at ${this.mountpoint || '/'})`;
  }

  #damaged(error: unknown): CvmfsError {
    return new CvmfsError(
      'bad-catalog',
      `${this.#describe()} cannot be read: ${describeError(error)}. It matched its hash when it was fetched, so the repository ` +
        `holds a broken catalog (ask its maintainers to republish), or the cached copy ${this.#file} was damaged since (delete it to fetch it again)`,
      { cause: error },
    );
  }
}

/**
 * The columns toStoredRow takes, in its order. Columns added by later schema revisions are read
 * as NULL from older catalogs.
 */
export function storedRowColumns(schemaRevision: number): string {
  return [
    'name', 'hardlinks', 'hash', 'size', 'mode', 'mtime', 'flags', 'symlink', 'uid', 'gid',
    schemaRevision >= 7 ? 'mtimens' : 'NULL',
    schemaRevision >= 2 ? 'xattr' : 'NULL',
    'md5path_1',
  ].join(', ');
}

function blobOrNull(value: unknown): Uint8Array | null {
  return value instanceof Uint8Array && value.length > 0 ? value : null;
}

/** The values of `storedRowColumns`, read as arrays with 64-bit integers as BigInts, as the row of `path`. */
export function toStoredRow(values: readonly unknown[], path: string): StoredRow {
  const [name, hardlinks, hash, size, mode, mtime, flags, symlink, uid, gid, mtimeNs, xattr, md5path1] = values;
  return {
    path,
    name: String(name),
    hardlinks: (hardlinks ?? 0n) as bigint,
    hash: blobOrNull(hash),
    size: Number(size),
    mode: Number(mode),
    mtime: Number(mtime),
    mtimeNs: mtimeNs === null ? null : Number(mtimeNs),
    flags: Number(flags),
    symlink: String(symlink ?? ''),
    uid: Number(uid),
    gid: Number(gid),
    xattr: blobOrNull(xattr),
    md5path1: md5path1 as bigint,
  };
}
