// Stores file contents as objects on worker threads, so that the thread reading the tar only
// parses it and builds catalogs: compressing, hashing and the file system calls of each object
// were most of that thread's time, while the other cores idled. Contents are copied into
// batches (one copy, and one message per batch instead of per file); a batch is sent when it
// is full or when the caller yields to the event loop, so no content waits for more to come.
import { Worker } from 'node:worker_threads';
import { hashRecipe, objectPath, type ContentHash, type ObjectSuffix } from '../hash.ts';
import type { ObjectStore } from './object-store.ts';
import { OBJECT_WRITER_SOURCE, type BatchOutcome, type ObjectBatch, type ObjectWriterSettings } from './object-writer-thread.ts';

// Large enough that a batch of small files costs the threads one message, small enough that
// a thread is not left idle while the next batch fills.
const BATCH_BYTES = 1024 * 1024;

interface Waiter {
  suffix: ObjectSuffix;
  resolve: (hash: ContentHash) => void;
  reject: (error: Error) => void;
}

interface OpenBatch {
  buffer: Buffer;
  used: number;
  objects: ObjectBatch['objects'];
  waiters: Waiter[];
}

interface SentBatch {
  bytes: number;
  waiters: Waiter[];
  settle: () => void;
}

interface Thread {
  worker: Worker;
  /** Batches in the order sent, which is the order the thread answers them. */
  sent: SentBatch[];
  bytes: number;
}

export class ObjectWriters {
  readonly #store: ObjectStore;
  readonly #threads: Thread[];
  readonly #inFlight = new Set<Promise<void>>();
  /** Batch buffers back from the threads: reused, as fresh memory costs a page fault per 4 KiB. */
  readonly #spare: ArrayBuffer[] = [];
  #open: OpenBatch | null = null;
  #failure: Error | null = null;
  #closing = false;

  /** Starts `threads` threads that store objects as `store.put` does, into the same storage. */
  constructor(store: ObjectStore, threads: number) {
    this.#store = store;
    const settings: ObjectWriterSettings = { storage: store.storage, tempDir: store.tempDir, level: store.compressionLevel, recipe: hashRecipe(store.algorithm) };
    this.#threads = Array.from({ length: threads }, () => this.#start(settings));
  }

  /** Stores the content made of `parts` (`size` bytes in all) unless it is there already. */
  put(parts: readonly Uint8Array[], size: number, suffix: ObjectSuffix): Promise<ContentHash> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    const given = parts.reduce((sum, part) => sum + part.length, 0);
    if (given !== size) throw new Error(`content of ${given} bytes was given as ${size}`);
    let batch = this.#open;
    if (batch !== null && batch.used + size > batch.buffer.length) {
      this.#send(batch);
      batch = null;
    }
    if (batch === null) batch = this.#openBatch(size);
    const offset = batch.used;
    for (const part of parts) {
      batch.buffer.set(part, batch.used);
      batch.used += part.length;
    }
    return this.#add(batch, offset, size, suffix);
  }

  /**
   * Like put, for a buffer nothing else refers to: a large one that has its memory to itself is
   * handed to a thread as it is (saving a copy and its page faults) and is empty afterwards.
   */
  putBuffer(data: Buffer, suffix: ObjectSuffix): Promise<ContentHash> {
    const owned = data.length > BATCH_BYTES && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    if (!owned || this.#failure !== null) return this.put([data], data.length, suffix);
    const batch: OpenBatch = { buffer: data, used: data.length, objects: [], waiters: [] };
    const stored = this.#add(batch, 0, data.length, suffix);
    this.#send(batch);
    return stored;
  }

  /** Sends what is waiting, lets every batch finish (so no temp file is cut short) and ends the threads. */
  async close(): Promise<void> {
    if (this.#open !== null) this.#send(this.#open);
    await Promise.all(this.#inFlight);
    this.#closing = true;
    await Promise.all(this.#threads.map(({ worker }) => worker.terminate()));
  }

  #add(batch: OpenBatch, offset: number, length: number, suffix: ObjectSuffix): Promise<ContentHash> {
    batch.objects.push({ offset, length, suffix });
    return new Promise((resolve, reject) => batch.waiters.push({ suffix, resolve, reject }));
  }

  #openBatch(size: number): OpenBatch {
    const spare = size <= BATCH_BYTES ? this.#spare.pop() : undefined;
    // Its own memory (not a slice of Node's pool), so that it can be transferred.
    const buffer = spare === undefined ? Buffer.allocUnsafeSlow(Math.max(BATCH_BYTES, size)) : Buffer.from(spare);
    const batch: OpenBatch = { buffer, used: 0, objects: [], waiters: [] };
    this.#open = batch;
    setImmediate(() => {
      if (this.#open === batch) this.#send(batch);
    });
    return batch;
  }

  #send(batch: OpenBatch): void {
    if (this.#open === batch) this.#open = null;
    if (this.#failure !== null) {
      for (const waiter of batch.waiters) waiter.reject(this.#failure);
      return;
    }
    const thread = this.#threads.reduce((least, candidate) => (candidate.bytes < least.bytes ? candidate : least));
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    this.#inFlight.add(settled);
    void settled.then(() => this.#inFlight.delete(settled));
    thread.sent.push({ bytes: batch.used, waiters: batch.waiters, settle });
    thread.bytes += batch.used;
    const message: ObjectBatch = { buffer: batch.buffer.buffer as ArrayBuffer, objects: batch.objects };
    thread.worker.postMessage(message, [message.buffer]);
  }

  #start(settings: ObjectWriterSettings): Thread {
    const worker = new Worker(OBJECT_WRITER_SOURCE, { eval: true, workerData: settings });
    const thread: Thread = { worker, sent: [], bytes: 0 };
    worker.on('message', (answer: BatchOutcome) => this.#answer(thread, answer));
    worker.on('error', (error) => this.#fail(thread, `the thread storing objects failed: ${error.message}`));
    worker.on('exit', (code) => {
      if (!this.#closing) this.#fail(thread, `the thread storing objects stopped (exit code ${code})`);
    });
    return thread;
  }

  #answer(thread: Thread, { buffer, outcomes }: BatchOutcome): void {
    const batch = thread.sent.shift();
    // Already failed with the thread.
    if (batch === undefined) return;
    thread.bytes -= batch.bytes;
    if (buffer.byteLength === BATCH_BYTES) this.#spare.push(buffer);
    for (const [index, outcome] of outcomes.entries()) {
      const waiter = batch.waiters[index]!;
      if ('error' in outcome) {
        waiter.reject(Object.assign(new Error(`cannot store an object in ${this.#store.storage}: ${outcome.error}`), { code: outcome.code }));
        continue;
      }
      const hash: ContentHash = { algorithm: this.#store.algorithm, hex: outcome.hex };
      if (outcome.written !== null) this.#store.recordWritten(objectPath(hash, waiter.suffix), outcome.written);
      waiter.resolve(hash);
    }
    batch.settle();
  }

  /** A thread that died takes its batches with it; every later put fails the same way. */
  #fail(thread: Thread, reason: string): void {
    this.#failure ??= new Error(reason);
    for (const batch of thread.sent.splice(0)) {
      for (const waiter of batch.waiters) waiter.reject(this.#failure);
      batch.settle();
    }
    thread.bytes = Infinity;
  }
}
