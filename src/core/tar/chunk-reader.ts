// Reads a byte stream in caller-sized pieces without gluing chunks together: pieces are
// views into the source's own buffers, and only a read that spans two chunks copies.

const EMPTY = Buffer.alloc(0);

export class ChunkReader {
  readonly #chunks: AsyncIterator<Buffer>;
  #current: Buffer = EMPTY;
  #offset = 0;
  #position = 0;
  #ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.#chunks = source[Symbol.asyncIterator]();
  }

  /** Bytes handed out or skipped so far: the archive offset of the next byte. */
  get position(): number {
    return this.#position;
  }

  /** Exactly `length` bytes, or fewer only when the input ends first. */
  async read(length: number): Promise<Buffer> {
    if (this.#current.length - this.#offset >= length) {
      const view = this.#current.subarray(this.#offset, this.#offset + length);
      this.#offset += length;
      this.#position += length;
      return view;
    }
    const pieces: Buffer[] = [];
    let missing = length;
    while (missing > 0) {
      const piece = await this.next(missing);
      if (piece === null) break;
      pieces.push(piece);
      missing -= piece.length;
    }
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length - missing);
  }

  /** The next 1 to `limit` bytes as they sit in the current chunk; null at end of input. */
  async next(limit: number): Promise<Buffer | null> {
    while (this.#offset >= this.#current.length) {
      if (this.#ended) return null;
      const result = await this.#chunks.next();
      if (result.done) {
        this.#ended = true;
        this.#current = EMPTY;
        this.#offset = 0;
        return null;
      }
      this.#current = result.value;
      this.#offset = 0;
    }
    const end = Math.min(this.#current.length, this.#offset + limit);
    const piece = this.#current.subarray(this.#offset, end);
    this.#position += end - this.#offset;
    this.#offset = end;
    return piece;
  }

  /** Skips `length` bytes; returns how many were skipped, fewer only at end of input. */
  async skip(length: number): Promise<number> {
    let skipped = 0;
    while (skipped < length) {
      const piece = await this.next(length - skipped);
      if (piece === null) break;
      skipped += piece.length;
    }
    return skipped;
  }

  /** Reads to the end, so a producer behind a pipe finishes and a gzip trailer gets checked. */
  async drain(): Promise<void> {
    while ((await this.next(Infinity)) !== null);
  }

  /** Lets the source release its resources when the reader stops early. */
  async close(): Promise<void> {
    if (!this.#ended) await this.#chunks.return?.();
  }
}
