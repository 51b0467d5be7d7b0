// The publisher's side of `data/`: objects are zlib-compressed (default level, as cvmfs does),
// named by the hash of the compressed bytes, written to a temp file and renamed into place, so
// a reader never sees half an object and a crash leaves at most an orphan. An object that is
// already there is never rewritten: same name, same bytes, and other revisions rely on it.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createDeflate, deflate, deflateSync, inflate } from 'node:zlib';
import { CvmfsError, describeError } from '../errors.ts';
import { createContentHasher, formatContentHash, hashBytes, objectPath, type ContentHash, type HashAlgorithm, type ObjectSuffix } from '../hash.ts';

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);
// Setting up a zlib stream costs tens of microseconds whatever the input, and a thread-pool round
// trip as much again: objects below this size are compressed right away on the calling thread
// (a few milliseconds at most), which also puts that thread to work beside the pool (measured
// with bench/cvmfs-ingest.ts on two cores).
const SMALL_OBJECT = 256 * 1024;
// zlib hands output to the main thread in pieces and waits for each to be taken: the default
// 16 KiB would stall a pool thread every few microseconds, while a piece much larger than the
// output costs page faults for nothing.
const OUTPUT_PIECE = 1024 * 1024;
const outputPiece = (inputBytes: number) => Math.min(OUTPUT_PIECE, Math.max(16 * 1024, inputBytes + 1024));

/** zlib's default level (Z_DEFAULT_COMPRESSION), which cvmfs uses. */
const DEFAULT_COMPRESSION_LEVEL = 6;

export class ObjectStore {
  readonly storage: string;
  readonly algorithm: HashAlgorithm;
  readonly compressionLevel: number;
  /** Where objects are written before they are renamed into place: on the storage's file system. */
  readonly tempDir: string;
  #tempCounter = 0;
  /** Object paths known to exist, so repeated content costs no stat. */
  readonly #present = new Set<string>();
  objectsWritten = 0;
  bytesWritten = 0;

  /**
   * `compressionLevel` only changes the bytes (and so the names) of new objects: readers inflate
   * any zlib stream. Below the default, large layers publish faster but deduplicate less often
   * against objects made by cvmfs_server, whose small objects this publisher otherwise reproduces.
   */
  constructor(storage: string, tempDir: string, algorithm: HashAlgorithm, compressionLevel = DEFAULT_COMPRESSION_LEVEL) {
    this.storage = storage;
    this.tempDir = tempDir;
    this.algorithm = algorithm;
    this.compressionLevel = compressionLevel;
  }

  /** Compresses and stores `data` unless it is there already; the suffix only changes the object's file name. */
  async put(data: Uint8Array, suffix: ObjectSuffix): Promise<ContentHash> {
    const compressed = data.length < SMALL_OBJECT ? deflateSync(data, { level: this.compressionLevel }) : await deflateAsync(data, { level: this.compressionLevel, chunkSize: outputPiece(data.length) });
    const hash = hashBytes(this.algorithm, compressed);
    const path = objectPath(hash, suffix);
    if (this.#exists(path)) return hash;
    const temp = this.#tempPath();
    await writeFile(temp, compressed);
    await this.#publish(temp, path, compressed.length);
    return hash;
  }

  /** Like put, for content too large to hold in memory: compressed and hashed while it streams to a temp file. */
  async putStream(body: AsyncIterable<Uint8Array>, suffix: ObjectSuffix): Promise<ContentHash> {
    const hasher = createContentHasher(this.algorithm);
    let compressedSize = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hasher.update(chunk);
        compressedSize += chunk.length;
        done(null, chunk);
      },
    });
    const temp = this.#tempPath();
    try {
      await pipeline(body, createDeflate({ level: this.compressionLevel, chunkSize: OUTPUT_PIECE }), hashing, createWriteStream(temp));
      const hash: ContentHash = { algorithm: this.algorithm, hex: hasher.digest('hex') };
      const path = objectPath(hash, suffix);
      if (this.#exists(path)) {
        await rm(temp, { force: true });
        return hash;
      }
      await this.#publish(temp, path, compressedSize);
      return hash;
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  /** An object's content, decompressed, after checking it matches its name. */
  async get(hash: ContentHash, suffix: ObjectSuffix): Promise<Buffer> {
    const path = join(this.storage, objectPath(hash, suffix));
    let compressed;
    try {
      compressed = await readFile(path);
    } catch (error) {
      throw new CvmfsError('bad-data', `cannot read ${path}: ${describeError(error)}; the repository storage is incomplete`, { cause: error });
    }
    const actual = hashBytes(hash.algorithm, compressed);
    if (actual.hex !== hash.hex) {
      throw new CvmfsError('bad-data', `${path} is damaged: its content hashes to ${formatContentHash(actual)}`);
    }
    try {
      return await inflateAsync(compressed);
    } catch (error) {
      throw new CvmfsError('bad-data', `${path} is not a valid zlib stream: ${describeError(error)}`, { cause: error });
    }
  }

  #exists(path: string): boolean {
    if (this.#present.has(path)) return true;
    if (!existsSync(join(this.storage, path))) return false;
    this.#present.add(path);
    return true;
  }

  #tempPath(): string {
    return join(this.tempDir, `object-${process.pid}-${this.#tempCounter++}`);
  }

  async #publish(temp: string, path: string, size: number): Promise<void> {
    const target = join(this.storage, path);
    try {
      await rename(temp, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // data/XX is made by init; a storage directory adopted from elsewhere may lack some.
      await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
    }
    this.recordWritten(path, size);
  }

  /** Counts an object written to `path` (also by a thread of ObjectWriters), which therefore exists. */
  recordWritten(path: string, size: number): void {
    this.#present.add(path);
    this.objectsWritten++;
    this.bytesWritten += size;
  }
}
