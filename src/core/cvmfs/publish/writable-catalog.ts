// One catalog opened for change inside a publish transaction: a private copy of its SQLite
// file that rows are added to and removed from, then sealed with new counters and properties.
// Paths are repository paths ("" for the root); a catalog's rows are stored under its
// mountpoint (root_prefix = mountpoint), which is how every writer since cvmfs 2.1 stores them.
import { statSync } from 'node:fs';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { storedRowColumns, toStoredRow, type CatalogRow } from '../catalog.ts';
import { FLAGS, TYPE_BITS, TYPE_MASK } from '../entry.ts';
import { CvmfsError } from '../errors.ts';
import { formatContentHash, type ContentHash } from '../hash.ts';
import { parentPath, pathHash, type PathHash } from '../path-hash.ts';
import { CATALOG_SCHEMA, CATALOG_SCHEMA_REVISION, createCatalogDatabase } from './catalog-schema.ts';
import { countersFromRows, countersToRows, zeroCounts, type CatalogCounters, type Counts } from './counters.ts';
import { openWorkDatabase } from './work-database.ts';

export interface ChunkEntry {
  offset: number;
  size: number;
  /** Raw digest of the compressed chunk object (algorithm from the file's flags). */
  hash: Uint8Array;
}

export interface NestedReference {
  /** Formatted content hash (hex + algorithm id); "" until the nested catalog is committed. */
  hash: string;
  size: number;
}

export interface SealedCatalog {
  file: string;
  /** Bytes of the uncompressed SQLite file (manifest B, nested_catalogs.size). */
  size: number;
  /** The catalog's own root entry as committed, for the parent's mountpoint row. */
  rootRow: CatalogRow;
  counters: CatalogCounters;
}

export interface SealProperties {
  revision: number;
  /** Formatted hash of the catalog this one replaces (40 zeros for a new nested catalog); null for none at all. */
  previousRevision: string | null;
  lastModified: number;
  counters: CatalogCounters;
}

const COLUMNS = storedRowColumns(Number(CATALOG_SCHEMA_REVISION));
const TYPE = `(mode & ${TYPE_MASK})`;
// A vacuum pays off once this share of the pages is free (cvmfs uses a similar bound).
const VACUUM_FREE_RATIO = 0.25;

export class WritableCatalog {
  readonly mountpoint: string;
  readonly file: string;
  /** The object this catalog was loaded from; null for one made in this transaction. */
  readonly originalHash: ContentHash | null;
  readonly originalCounters: CatalogCounters;
  /** nested_catalogs as loaded, path → formatted hash, to tell which references changed. */
  readonly originalNested: ReadonlyMap<string, string>;
  readonly #database: DatabaseSync;
  readonly #nested: Map<string, NestedReference>;
  readonly #statements: Record<'find' | 'children' | 'put' | 'remove' | 'chunks' | 'addChunk' | 'removeChunks' | 'setNested' | 'removeNested' | 'setProperty' | 'getProperty', StatementSync>;

  private constructor(database: DatabaseSync, file: string, mountpoint: string, originalHash: ContentHash | null) {
    this.#database = database;
    this.file = file;
    this.mountpoint = mountpoint;
    this.originalHash = originalHash;
    const prepare = (sql: string) => database.prepare(sql);
    this.#statements = {
      find: prepare(`SELECT ${COLUMNS} FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?`),
      children: prepare(`SELECT ${COLUMNS} FROM catalog WHERE parent_1 = ? AND parent_2 = ?`),
      put: prepare(
        'INSERT INTO catalog (md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, size, mode, mtime, mtimens, flags, name, symlink, uid, gid, xattr) ' +
          'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (md5path_1, md5path_2) DO UPDATE SET ' +
          'parent_1 = excluded.parent_1, parent_2 = excluded.parent_2, hardlinks = excluded.hardlinks, hash = excluded.hash, size = excluded.size, ' +
          'mode = excluded.mode, mtime = excluded.mtime, mtimens = excluded.mtimens, flags = excluded.flags, name = excluded.name, ' +
          'symlink = excluded.symlink, uid = excluded.uid, gid = excluded.gid, xattr = excluded.xattr',
      ),
      remove: prepare('DELETE FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?'),
      chunks: prepare('SELECT offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ? ORDER BY offset'),
      addChunk: prepare('INSERT OR REPLACE INTO chunks (md5path_1, md5path_2, offset, size, hash) VALUES (?, ?, ?, ?, ?)'),
      removeChunks: prepare('DELETE FROM chunks WHERE md5path_1 = ? AND md5path_2 = ?'),
      setNested: prepare('INSERT OR REPLACE INTO nested_catalogs (path, sha1, size) VALUES (?, ?, ?)'),
      removeNested: prepare('DELETE FROM nested_catalogs WHERE path = ?'),
      setProperty: prepare('INSERT OR REPLACE INTO properties (key, value) VALUES (?, ?)'),
      getProperty: prepare('SELECT value FROM properties WHERE key = ?'),
    };
    for (const statement of [this.#statements.find, this.#statements.children]) {
      statement.setReadBigInts(true);
      statement.setReturnArrays(true);
    }
    this.#nested = new Map(
      (database.prepare('SELECT path, sha1, size FROM nested_catalogs').all() as { path: string; sha1: string; size: number | null }[]).map((row) => [
        row.path,
        { hash: row.sha1, size: Number(row.size ?? 0) },
      ]),
    );
    this.originalNested = new Map([...this.#nested].map(([path, reference]) => [path, reference.hash]));
    this.originalCounters =
      originalHash === null
        ? { self: zeroCounts(), subtree: zeroCounts() }
        : countersFromRows(this.#storedCounterRows(), `catalog ${formatContentHash(originalHash)}`);
    // One transaction for all changes; the file is discarded if the publish fails.
    database.exec('BEGIN');
  }

  /** A new, empty catalog holding just its root entry (`rootRow.path` must be `mountpoint`). */
  static create(file: string, mountpoint: string, rootRow: CatalogRow): WritableCatalog {
    const database = createCatalogDatabase(file);
    if (mountpoint !== '') database.prepare('INSERT INTO properties (key, value) VALUES (?, ?)').run('root_prefix', mountpoint);
    const catalog = new WritableCatalog(database, file, mountpoint, null);
    catalog.put(rootRow);
    return catalog;
  }

  /** A decompressed catalog object, checked to be one this writer can extend. */
  static open(file: string, mountpoint: string, hash: ContentHash): WritableCatalog {
    const database = openWorkDatabase(file);
    const where = `catalog ${formatContentHash(hash)} (mounted at ${mountpoint || '/'})`;
    try {
      const property = (key: string) => (database.prepare('SELECT value FROM properties WHERE key = ?').get(key) as { value: unknown } | undefined)?.value;
      const schema = String(property('schema'));
      const revision = String(property('schema_revision'));
      if (Math.abs(Number(schema) - Number(CATALOG_SCHEMA)) > 0.0005 || revision !== CATALOG_SCHEMA_REVISION) {
        throw new CvmfsError('unsupported', `${where} has schema ${schema} revision ${revision}; only ${CATALOG_SCHEMA} revision ${CATALOG_SCHEMA_REVISION} (cvmfs 2.12) can be extended`);
      }
      const rootPrefix = property('root_prefix');
      if ((rootPrefix === undefined ? '' : String(rootPrefix)) !== mountpoint) {
        throw new CvmfsError('unsupported', `${where} stores its entries under "${String(rootPrefix)}"; only catalogs stored under their mountpoint can be extended`);
      }
      return new WritableCatalog(database, file, mountpoint, hash);
    } catch (error) {
      database.close();
      throw error;
    }
  }

  find(path: string): CatalogRow | undefined {
    const values = this.#statements.find.get(...pathHash(path)) as unknown[] | undefined;
    return values === undefined ? undefined : toStoredRow(values, path);
  }

  children(path: string): CatalogRow[] {
    return (this.#statements.children.all(...pathHash(path)) as unknown as unknown[][]).map((values) => toStoredRow(values, childPath(path, String(values[0]))));
  }

  /** Every row below `path` in this catalog, parents before children. */
  *descendants(path: string): Generator<CatalogRow> {
    const directories = [path];
    while (directories.length > 0) {
      for (const child of this.children(directories.pop()!)) {
        yield child;
        if ((child.mode & TYPE_MASK) === TYPE_BITS.dir) directories.push(child.path);
      }
    }
  }

  /** Adds or replaces the row at `row.path`. Only the repository root has the null parent. */
  put(row: CatalogRow): void {
    const [parent1, parent2]: PathHash = row.path === '' ? [0n, 0n] : pathHash(parentPath(row.path));
    this.#statements.put.run(
      ...pathHash(row.path), parent1, parent2, row.hardlinks, row.hash, row.size, row.mode, row.mtime, row.mtimeNs,
      row.flags, row.name, row.symlink, row.uid, row.gid, row.xattr,
    );
  }

  /** Removes one row and its chunk list. */
  remove(path: string): void {
    const key = pathHash(path);
    this.#statements.remove.run(...key);
    this.#statements.removeChunks.run(...key);
  }

  chunks(path: string): ChunkEntry[] {
    return this.#statements.chunks.all(...pathHash(path)).map((row) => ({ offset: Number(row.offset), size: Number(row.size), hash: row.hash as Uint8Array }));
  }

  setChunks(path: string, chunks: readonly ChunkEntry[]): void {
    const key = pathHash(path);
    this.#statements.removeChunks.run(...key);
    for (const chunk of chunks) this.#statements.addChunk.run(...key, chunk.offset, chunk.size, chunk.hash);
  }

  /** Direct nested catalogs: mountpoint → reference. */
  get nested(): ReadonlyMap<string, NestedReference> {
    return this.#nested;
  }

  setNested(path: string, reference: NestedReference): void {
    this.#nested.set(path, reference);
    this.#statements.setNested.run(path, reference.hash, reference.size);
  }

  removeNested(path: string): void {
    this.#nested.delete(path);
    this.#statements.removeNested.run(path);
  }

  property(key: string): string | undefined {
    const row = this.#statements.getProperty.get(key) as { value: unknown } | undefined;
    return row === undefined ? undefined : String(row.value);
  }

  /**
   * Commits the changes: link counts, statistics and properties, then closes the file. The
   * caller supplies the subtree counters, which depend on the nested catalogs.
   */
  seal(properties: SealProperties): SealedCatalog {
    const database = this.#database;
    this.#fixDirectoryLinkcounts();
    const rootRow = this.find(this.mountpoint);
    if (rootRow === undefined) throw new CvmfsError('bad-catalog', `catalog at ${this.mountpoint || '/'} lost its root entry`);
    const setProperty = (key: string, value: string) => this.#statements.setProperty.run(key, value);
    setProperty('revision', String(properties.revision));
    if (properties.previousRevision !== null) setProperty('previous_revision', properties.previousRevision);
    setProperty('last_modified', String(properties.lastModified));
    const counter = database.prepare('INSERT OR REPLACE INTO statistics (counter, value) VALUES (?, ?)');
    for (const [name, value] of countersToRows(properties.counters)) counter.run(name, value);
    database.exec('COMMIT');
    const pages = database.prepare('SELECT * FROM pragma_page_count(), pragma_freelist_count()').get() as { page_count: number; freelist_count: number };
    if (pages.freelist_count > pages.page_count * VACUUM_FREE_RATIO) database.exec('VACUUM');
    database.close();
    return { file: this.file, size: statSync(this.file).size, rootRow, counters: properties.counters };
  }

  /** Counters of this catalog's own rows (doc §2.7, as `cvmfs_swissknife check` counts them). */
  selfCounters(): Counts {
    const row = this.#database
      .prepare(
        `SELECT
          COALESCE(SUM(${TYPE} = ${TYPE_BITS.file}), 0) AS regular,
          COALESCE(SUM(${TYPE} = ${TYPE_BITS.symlink}), 0) AS symlink,
          COALESCE(SUM(${TYPE} IN (${TYPE_BITS.chardev}, ${TYPE_BITS.blockdev}, ${TYPE_BITS.fifo}, ${TYPE_BITS.socket})), 0) AS special,
          COALESCE(SUM(${TYPE} = ${TYPE_BITS.dir}), 0) AS dir,
          COALESCE(SUM(CASE WHEN ${TYPE} = ${TYPE_BITS.file} THEN size ELSE 0 END), 0) AS file_size,
          COALESCE(SUM((flags & ${FLAGS.chunked}) != 0), 0) AS chunked,
          COALESCE(SUM(CASE WHEN flags & ${FLAGS.chunked} THEN size ELSE 0 END), 0) AS chunked_size,
          COALESCE(SUM(xattr IS NOT NULL), 0) AS xattr,
          COALESCE(SUM((flags & ${FLAGS.external}) != 0), 0) AS external,
          COALESCE(SUM(CASE WHEN flags & ${FLAGS.external} THEN size ELSE 0 END), 0) AS external_file_size,
          (SELECT COUNT(*) FROM chunks) AS chunks,
          (SELECT COUNT(*) FROM nested_catalogs) AS nested
        FROM catalog`,
      )
      .get() as Record<string, number>;
    return Object.fromEntries(Object.entries(zeroCounts()).map(([field]) => [field, Number(row[field])])) as Counts;
  }

  /** Closes without committing; the caller removes the file. */
  discard(): void {
    if (this.#database.isOpen) this.#database.close();
  }

  #storedCounterRows(): Map<string, number> {
    const rows = this.#database.prepare('SELECT counter, value FROM statistics').all() as { counter: string; value: number }[];
    return new Map(rows.map((row) => [row.counter, Number(row.value)]));
  }

  // 2 + subdirectories for every directory here; a mountpoint row instead mirrors its nested
  // catalog's root, which the parent is given when that catalog is committed.
  #fixDirectoryLinkcounts(): void {
    this.#database.exec(
      `UPDATE catalog SET hardlinks = 2 + (SELECT COUNT(*) FROM catalog AS child
         WHERE child.parent_1 = catalog.md5path_1 AND child.parent_2 = catalog.md5path_2 AND (child.mode & ${TYPE_MASK}) = ${TYPE_BITS.dir})
       WHERE ${TYPE} = ${TYPE_BITS.dir} AND (flags & ${FLAGS.nestedMountpoint}) = 0`,
    );
  }
}

function childPath(directory: string, name: string): string {
  return `${directory}/${name}`;
}
