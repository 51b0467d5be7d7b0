// The code of a thread that stores objects, ObjectStore.put's work for a batch of contents at a
// time: compress, hash, skip if present, write a temp file, rename it into place. It runs as a
// string with eval:true because inside the single executable there is no file to start a worker
// from, and in CommonJS because the bundle and eval'd workers are CommonJS. It names objects as
// objectPath does and compresses with the same zlib as ObjectStore, so its objects are the very
// bytes the main thread would write.
import type { HashRecipe, ObjectSuffix } from '../hash.ts';

export interface ObjectWriterSettings {
  storage: string;
  tempDir: string;
  level: number;
  recipe: HashRecipe;
}

/** Contents packed one after the other into `buffer`, which is transferred. */
export interface ObjectBatch {
  buffer: ArrayBuffer;
  objects: { offset: number; length: number; suffix: ObjectSuffix }[];
}

/** Per object of a batch: its hash, and the compressed size when this thread wrote it (null: it was there). */
export type ObjectOutcome = { hex: string; written: number | null } | { error: string; code: string | undefined };

/** The answer to a batch, with its buffer transferred back for the next one. */
export interface BatchOutcome {
  buffer: ArrayBuffer;
  outcomes: ObjectOutcome[];
}

// A failed object is reported on its own and its temp file removed; the rest of the batch goes on.
// Each thread has a temp directory of its own: threads creating and renaming files in one
// directory contend for its lock, which doubled the system time of two threads (measured).
export const OBJECT_WRITER_SOURCE = `
const { parentPort, workerData, threadId } = require('node:worker_threads');
const { deflateSync } = require('node:zlib');
const { createHash } = require('node:crypto');
const { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { storage, tempDir, level, recipe } = workerData;
const hashOptions = recipe.outputLength === undefined ? undefined : { outputLength: recipe.outputLength };
const ownTempDir = join(tempDir, 'objects-' + threadId);
const present = new Set();
let counter = 0;

function store(data, suffix) {
  let temp;
  try {
    // zlib's 16 KiB output pieces: larger ones, sized for the input, left the process a tenth
    // larger (dead output waits for this thread's garbage collector) and saved no time.
    const compressed = deflateSync(data, { level });
    const hex = createHash(recipe.digest, hashOptions).update(compressed).digest('hex');
    const name = hex + recipe.id;
    const path = 'data/' + name.slice(0, 2) + '/' + name.slice(2) + suffix;
    if (present.has(path)) return { hex, written: null };
    const target = join(storage, path);
    if (existsSync(target)) {
      present.add(path);
      return { hex, written: null };
    }
    if (counter === 0) mkdirSync(ownTempDir, { recursive: true });
    temp = join(ownTempDir, String(counter++));
    writeFileSync(temp, compressed);
    try {
      renameSync(temp, target);
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
      mkdirSync(dirname(target), { recursive: true });
      renameSync(temp, target);
    }
    present.add(path);
    return { hex, written: compressed.length };
  } catch (error) {
    if (temp !== undefined) rmSync(temp, { force: true });
    return { error: String(error.message), code: error.code };
  }
}

parentPort.on('message', ({ buffer, objects }) => {
  const outcomes = objects.map(({ offset, length, suffix }) => store(new Uint8Array(buffer, offset, length), suffix));
  parentPort.postMessage({ buffer, outcomes }, [buffer]);
});
`;
