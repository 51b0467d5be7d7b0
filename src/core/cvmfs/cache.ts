// Local cache of decompressed objects, content-addressed and shared by every repository and
// process that points at the same directory:
//   data/XX/<rest of hash>   object bytes (named by the hash of the *compressed* object, no suffix);
//                            <rest of hash>.whole: a chunked file put together from its chunks
//   txn/                     downloads in progress; renamed into data/ only once verified
//   ledger.db                SQLite: size and last access of every object, for the LRU bound
// Files appear atomically (rename), so no reader ever sees a partial object. Several processes
// may use and evict concurrently: SQLite serialises the ledger, and every file operation
// tolerates a file that another process has just removed.
import { randomBytes } from 'node:crypto';
import { statSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { log } from '../log.ts';
import { CvmfsError, describeError } from './errors.ts';

export interface ObjectCacheOptions {
  directory: string;
  /** Upper bound for the bytes of all cached objects (CVMFS_QUOTA_LIMIT). */
  maxBytes: number;
  /**
   * Repeated accesses to one object within this time are not written to the ledger again, to
   * keep ledger writes off the read path. Default 30 s; the LRU order is that coarse.
   */
  accessRecordIntervalMs?: number;
}

// An eviction frees down to this share of the bound, so the next one is not due right away.
const EVICTION_TARGET = 0.75;
const DEFAULT_ACCESS_RECORD_INTERVAL_MS = 30_000;
// Temp files this old belong to a process that died mid-download.
const STALE_TEMP_MS = 60 * 60 * 1000;
// How long a process waits for another one holding the ledger lock.
const LEDGER_BUSY_TIMEOUT_MS = 10_000;
// Accesses are written to the ledger this long after the first one not yet written, all in one
// transaction: each write of its own cost ~0.3 ms, on the path of every first open of a file.
const ACCESS_FLUSH_DELAY_MS = 1000;

export class ObjectCache {
  readonly directory: string;
  readonly maxBytes: number;
  readonly #accessRecordIntervalMs: number;
  readonly #ledger: DatabaseSync;
  readonly #statements: Record<'record' | 'total' | 'leastRecentlyUsed' | 'forget', StatementSync>;
  readonly #lastRecordedAccess = new Map<string, number>();
  /** Accesses not written to the ledger yet: key → size and time. */
  readonly #pendingAccesses = new Map<string, { size: number; at: number }>();
  #accessFlush: NodeJS.Timeout | null = null;

  private constructor(options: ObjectCacheOptions, ledger: DatabaseSync) {
    this.directory = options.directory;
    this.maxBytes = options.maxBytes;
    this.#accessRecordIntervalMs = options.accessRecordIntervalMs ?? DEFAULT_ACCESS_RECORD_INTERVAL_MS;
    this.#ledger = ledger;
    this.#statements = {
      record: ledger.prepare(
        'INSERT INTO objects (key, size, accessed) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET size = excluded.size, accessed = excluded.accessed',
      ),
      total: ledger.prepare('SELECT bytes FROM totals'),
      leastRecentlyUsed: ledger.prepare('SELECT key, size FROM objects ORDER BY accessed'),
      forget: ledger.prepare('DELETE FROM objects WHERE key = ?'),
    };
  }

  static async open(options: ObjectCacheOptions): Promise<ObjectCache> {
    if (!(options.maxBytes > 0)) throw new CvmfsError('config', `cache size bound must be positive, got ${options.maxBytes}`);
    try {
      await mkdir(join(options.directory, 'txn'), { recursive: true });
    } catch (error) {
      throw new CvmfsError('config', `cannot create cache directory ${options.directory}: ${describeError(error)}`, { cause: error });
    }
    const ledger = new DatabaseSync(join(options.directory, 'ledger.db'), { timeout: LEDGER_BUSY_TIMEOUT_MS });
    ledger.exec('PRAGMA journal_mode = WAL');
    // The ledger only steers eviction; losing its last commits in a power cut is harmless, an
    // fsync per cached object is not.
    ledger.exec('PRAGMA synchronous = NORMAL');
    // The running total is kept by triggers so that checking the bound does not scan the table.
    ledger.exec(`
      BEGIN IMMEDIATE;
      CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, size INTEGER NOT NULL, accessed REAL NOT NULL);
      CREATE INDEX IF NOT EXISTS objects_by_access ON objects (accessed);
      CREATE TABLE IF NOT EXISTS totals (bytes INTEGER NOT NULL);
      INSERT INTO totals SELECT total(size) FROM objects WHERE NOT EXISTS (SELECT 1 FROM totals);
      CREATE TRIGGER IF NOT EXISTS objects_added AFTER INSERT ON objects BEGIN UPDATE totals SET bytes = bytes + NEW.size; END;
      CREATE TRIGGER IF NOT EXISTS objects_removed AFTER DELETE ON objects BEGIN UPDATE totals SET bytes = bytes - OLD.size; END;
      CREATE TRIGGER IF NOT EXISTS objects_resized AFTER UPDATE OF size ON objects BEGIN UPDATE totals SET bytes = bytes - OLD.size + NEW.size; END;
      COMMIT;
    `);
    const cache = new ObjectCache(options, ledger);
    await cache.#removeStaleTempFiles();
    return cache;
  }

  /** Where the object with this key (formatted content hash) lives once cached. */
  pathOf(key: string): string {
    return join(this.directory, 'data', key.slice(0, 2), key.slice(2));
  }

  /** The cached object's path, or null. Counts as an access for the LRU order. */
  async find(key: string): Promise<string | null> {
    const path = this.pathOf(key);
    // Synchronous: a local stat takes microseconds, a trip through libuv's thread pool far more,
    // and every file a container opens comes here first. A miss throws nothing (an exception
    // costs more than the stat), and a directory's cached files are looked for in bulk.
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined) return null;
    const size = stats.size;
    const now = wallClockMs();
    if (now - (this.#lastRecordedAccess.get(key) ?? 0) >= this.#accessRecordIntervalMs) this.#recordLater(key, size, now);
    return path;
  }

  /**
   * Adds an object: `write` fills a temp file, which becomes visible under the key only if
   * `write` succeeds. Returns the object's path. May evict other objects to honour the bound.
   */
  async store(key: string, write: (tempPath: string) => Promise<void>): Promise<string> {
    const tempPath = join(this.directory, 'txn', `${key}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const path = this.pathOf(key);
    let size;
    try {
      await write(tempPath);
      size = (await stat(tempPath)).size;
      await mkdir(dirname(path), { recursive: true });
      await rename(tempPath, path);
    } catch (error) {
      await rm(tempPath, { force: true });
      throw error;
    }
    this.#record(key, size, wallClockMs());
    this.#enforceBound(key);
    return path;
  }

  /** Bytes of all objects, as the ledger knows them. */
  totalBytes(): number {
    return Number((this.#statements.total.get() as { bytes: number }).bytes);
  }

  close(): void {
    this.#flushAccesses();
    this.#ledger.close();
  }

  #record(key: string, size: number, now: number): void {
    this.#pendingAccesses.delete(key);
    this.#statements.record.run(key, size, now);
    this.#lastRecordedAccess.set(key, now);
  }

  #recordLater(key: string, size: number, now: number): void {
    this.#pendingAccesses.set(key, { size, at: now });
    this.#lastRecordedAccess.set(key, now);
    this.#accessFlush ??= setTimeout(() => this.#flushAccesses(), ACCESS_FLUSH_DELAY_MS).unref();
  }

  #flushAccesses(): void {
    if (this.#accessFlush !== null) clearTimeout(this.#accessFlush);
    this.#accessFlush = null;
    if (this.#pendingAccesses.size === 0) return;
    try {
      this.#ledger.exec('BEGIN IMMEDIATE');
      for (const [key, { size, at }] of this.#pendingAccesses) this.#statements.record.run(key, size, at);
      this.#ledger.exec('COMMIT');
    } catch (error) {
      // Only the eviction order suffers; the objects are fine.
      if (this.#ledger.isTransaction) this.#ledger.exec('ROLLBACK');
      log.warn(`cvmfs cache ${this.directory}: cannot record ${this.#pendingAccesses.size} accesses: ${describeError(error)}`);
    }
    this.#pendingAccesses.clear();
  }

  /** Evicts least recently used objects, never `keep` (the one just stored, about to be read). */
  #enforceBound(keep: string): void {
    this.#flushAccesses();
    const total = this.totalBytes();
    if (total <= this.maxBytes) return;
    const target = this.maxBytes * EVICTION_TARGET;
    // IMMEDIATE takes the write lock up front, so two processes never evict from the same view.
    this.#ledger.exec('BEGIN IMMEDIATE');
    try {
      let remaining = this.totalBytes();
      const victims = this.#statements.leastRecentlyUsed.iterate() as Iterable<{ key: string; size: number }>;
      const evicted: string[] = [];
      for (const { key, size } of victims) {
        if (remaining <= target) break;
        if (key === keep) continue;
        evicted.push(key);
        remaining -= size;
      }
      for (const key of evicted) {
        this.#statements.forget.run(key);
        try {
          unlinkSync(this.pathOf(key));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
        this.#lastRecordedAccess.delete(key);
      }
      this.#ledger.exec('COMMIT');
      log.debug(`cvmfs cache ${this.directory}: evicted ${evicted.length} objects, ${remaining} bytes remain`);
      if (remaining > this.maxBytes) log.warn(`cvmfs cache ${this.directory}: object ${keep} alone exceeds the ${this.maxBytes}-byte bound`);
    } catch (error) {
      this.#ledger.exec('ROLLBACK');
      throw error;
    }
  }

  async #removeStaleTempFiles(): Promise<void> {
    const txn = join(this.directory, 'txn');
    for (const name of await readdir(txn)) {
      try {
        if (Date.now() - (await stat(join(txn, name))).mtimeMs > STALE_TEMP_MS) await rm(join(txn, name), { force: true });
      } catch {
        // Another process finished or removed it meanwhile.
      }
    }
  }
}

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across processes. */
function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}
