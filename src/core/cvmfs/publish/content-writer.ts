// Turns a regular file's bytes into objects, stored by worker threads while the caller moves on
// through the tar: files up to the chunking threshold become one object; larger ones are cut
// like the real publisher cuts them (chunk objects with suffix P; a file that yields a single
// piece is stored whole). Memory is bounded by a budget of bytes waiting to be stored.
import { availableParallelism } from 'node:os';
import type { ContentHash } from '../hash.ts';
import { cutChunks, mightChunk, type ChunkSizes } from './chunker.ts';
import type { ObjectStore } from './object-store.ts';
import { ObjectWriters } from './object-writers.ts';
import type { FileContent } from './rows.ts';
import type { ChunkEntry } from './writable-catalog.ts';

// Bytes read but not yet stored: a few chunks' worth keeps the threads busy. The job count
// bounds what a tar of countless empty files queues.
const BUDGET_BYTES = 64 * 1024 * 1024;
const MAX_JOBS = 256;
// One thread per core, up to four (measured on two): compressing is most of the work, and the
// caller's thread mostly waits for them.
const THREADS = Math.min(4, availableParallelism());
// Without chunking, larger files are streamed through zlib instead of held in memory.
const LARGEST_BUFFERED_FILE = 64 * 1024 * 1024;

export interface StoredContent {
  content: FileContent;
  chunks: ChunkEntry[];
}

/** Content that was read; `stored` settles once its objects are written. */
export interface PendingContent {
  stored: Promise<StoredContent>;
}

export class ContentWriter {
  readonly #store: ObjectStore;
  readonly #writers: ObjectWriters;
  readonly #chunking: ChunkSizes | null;
  readonly #budget: ByteBudget;

  /** `chunking` null stores every file whole, as `cvmfs_server ingest` does. Starts threads: close() it. */
  constructor(store: ObjectStore, chunking: ChunkSizes | null) {
    this.#store = store;
    this.#writers = new ObjectWriters(store, THREADS);
    this.#chunking = chunking;
    this.#budget = new ByteBudget(BUDGET_BYTES);
  }

  /**
   * Reads `body` (of `size` bytes) to its end and returns the pending result: the objects are
   * written in the background, and the returned promise settles once they are all stored.
   */
  async write(body: AsyncIterable<Buffer>, size: number): Promise<PendingContent> {
    if (this.#chunking !== null && mightChunk(size, this.#chunking)) return this.#writeChunked(body, size, this.#chunking);
    if (size > LARGEST_BUFFERED_FILE) {
      const hash = await this.#store.putStream(body, '');
      return { stored: Promise.resolve(wholeFile(size, hash)) };
    }
    await this.#budget.acquire(size);
    let parts;
    try {
      parts = await readWhole(body, size);
    } catch (error) {
      this.#budget.release(size);
      throw error;
    }
    return { stored: this.#settle(this.#writers.put(parts, size, '').then((hash) => wholeFile(size, hash)), size) };
  }

  /** Waits for the objects under way and ends the threads. */
  close(): Promise<void> {
    return this.#writers.close();
  }

  async #writeChunked(body: AsyncIterable<Buffer>, size: number, sizes: ChunkSizes): Promise<PendingContent> {
    const stored: Promise<{ offset: number; size: number; hash: ContentHash }>[] = [];
    // The first piece waits until a second one shows it is a chunk and not the whole file.
    let first: Buffer | undefined;
    let offset = 0;
    // Pieces are handed over to the writers (and emptied), so their lengths are taken first.
    const storeChunk = async (piece: Buffer, at: number) => {
      const length = piece.length;
      await this.#budget.acquire(length);
      stored.push(this.#settle(this.#writers.putBuffer(piece, 'P').then((hash) => ({ offset: at, size: length, hash })), length));
    };
    for await (const piece of cutChunks(body, sizes)) {
      const length = piece.length;
      if (offset === 0) first = piece;
      else {
        if (first !== undefined) await storeChunk(first, 0);
        first = undefined;
        await storeChunk(piece, offset);
      }
      offset += length;
    }
    if (offset !== size) throw new Error(`file content ended after ${offset} of ${size} bytes`);
    if (first !== undefined) {
      // A sole piece is the whole file: stored without suffix and not flagged as chunked.
      await this.#budget.acquire(size);
      return { stored: this.#settle(this.#writers.putBuffer(first, '').then((hash) => wholeFile(size, hash)), size) };
    }
    const all = Promise.all(stored).then((chunks) => ({
      content: { size, algorithm: this.#store.algorithm, chunked: true as const },
      chunks: chunks.map((chunk) => ({ offset: chunk.offset, size: chunk.size, hash: Buffer.from(chunk.hash.hex, 'hex') })),
    }));
    all.catch(() => {});
    return { stored: all };
  }

  /** Gives the bytes back to the budget however the job ends. */
  #settle<T>(job: Promise<T>, bytes: number): Promise<T> {
    const settled = job.finally(() => this.#budget.release(bytes));
    // The caller awaits it later, possibly after it failed; that is not an unhandled rejection.
    settled.catch(() => {});
    return settled;
  }
}

function wholeFile(size: number, hash: ContentHash): StoredContent {
  return { content: { size, algorithm: hash.algorithm, chunked: false, hash }, chunks: [] };
}

/** The content's pieces (views of the source's buffers, which it does not reuse). */
async function readWhole(body: AsyncIterable<Buffer>, size: number): Promise<Buffer[]> {
  const pieces: Buffer[] = [];
  let filled = 0;
  for await (const piece of body) {
    pieces.push(piece);
    filled += piece.length;
  }
  if (filled !== size) throw new Error(`file content has ${filled} bytes where its header gives ${size}`);
  return pieces;
}

/** Admits a job while fewer than `limit` bytes and MAX_JOBS jobs are outstanding (always at least one). */
class ByteBudget {
  readonly #limit: number;
  #outstanding = 0;
  #jobs = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  async acquire(bytes: number): Promise<void> {
    while (this.#jobs > 0 && (this.#outstanding + bytes > this.#limit || this.#jobs >= MAX_JOBS)) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#outstanding += bytes;
    this.#jobs++;
  }

  release(bytes: number): void {
    this.#outstanding -= bytes;
    this.#jobs--;
    for (const wake of this.#waiting.splice(0)) wake();
  }
}
