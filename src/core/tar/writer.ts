// Writes a tar archive to a stream, one entry at a time, waiting for the stream to drain
// so a slow consumer holds back the producer instead of filling memory.

import { finished } from 'node:stream/promises';
import type { TarHeader } from './entry.ts';
import { encodeHeader } from './header-encoder.ts';
import { BLOCK_SIZE, paddingAfter } from './ustar.ts';

// Two zero blocks end an archive; padding is a slice of them.
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK_SIZE);

// Headers, padding and small bodies are copied into one buffer of this size and written
// together: a layer is mostly small files, and a write per piece costs a system call each.
const BATCH_SIZE = 64 * 1024;

export class TarWriter {
  readonly #out: NodeJS.WritableStream;
  #failure: Error | undefined;
  #busy = false;
  #finished = false;
  #batch = Buffer.allocUnsafe(BATCH_SIZE);
  #batched = 0;

  /** Write errors of `out` are reported by the next add() or finish() instead of thrown at large. */
  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
    out.on('error', (error: Error) => {
      this.#failure ??= error;
    });
  }

  /**
   * Appends one entry. `body` is required when header.size > 0 and must hold exactly
   * header.size bytes. A header that tar cannot express is rejected before anything is
   * written; a body of the wrong length leaves the archive broken and the writer unusable.
   */
  async add(header: TarHeader, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
    const blocks = encodeHeader(header);
    const given = body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : undefined;
    if (given !== undefined && given !== header.size) {
      throw new Error(`tar entry ${JSON.stringify(header.path)}: body has ${given} bytes but the header says ${header.size}`);
    }
    await this.#exclusively(async () => {
      await this.#write(blocks);
      if (Buffer.isBuffer(body)) {
        if (body.length > 0) await this.#write(body);
      } else if (body !== undefined) {
        await this.#writeStream(header, body);
      }
      const padding = paddingAfter(header.size);
      if (padding > 0) await this.#write(END_OF_ARCHIVE.subarray(0, padding));
    });
  }

  /** Writes the end-of-archive blocks, ends the stream and waits until it has flushed. */
  async finish(): Promise<void> {
    await this.#exclusively(async () => {
      await this.#write(END_OF_ARCHIVE);
      await this.#flush();
      this.#out.end();
      await finished(this.#out, { readable: false });
      this.#finished = true;
    });
  }

  async #writeStream(header: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    let written = 0;
    for await (const chunk of body) {
      written += chunk.length;
      if (written > header.size) {
        throw new Error(`tar entry ${JSON.stringify(header.path)}: body is longer than the header's size ${header.size}`);
      }
      if (chunk.length > 0) await this.#write(chunk);
    }
    if (written < header.size) {
      throw new Error(`tar entry ${JSON.stringify(header.path)}: body has ${written} bytes but the header says ${header.size}`);
    }
  }

  /** Runs one step of output; any failure in it leaves a partial entry, so it sticks. */
  async #exclusively(step: () => Promise<void>): Promise<void> {
    if (this.#failure !== undefined) throw new Error('tar writer failed earlier', { cause: this.#failure });
    if (this.#finished) throw new Error('tar writer already finished');
    if (this.#busy) throw new Error('tar writer used before the previous add() or finish() completed');
    this.#busy = true;
    try {
      await step();
    } catch (error) {
      this.#failure ??= error as Error;
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  async #write(chunk: Buffer): Promise<void> {
    if (this.#batched + chunk.length > BATCH_SIZE) await this.#flush();
    if (chunk.length >= BATCH_SIZE) {
      await this.#send(chunk);
    } else {
      this.#batched += chunk.copy(this.#batch, this.#batched);
    }
  }

  async #flush(): Promise<void> {
    if (this.#batched === 0) return;
    const full = this.#batch.subarray(0, this.#batched);
    // The stream keeps the buffer until it is written out, so start a fresh one.
    this.#batch = Buffer.allocUnsafe(BATCH_SIZE);
    this.#batched = 0;
    await this.#send(full);
  }

  async #send(chunk: Buffer): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (!this.#out.writable) throw new Error('tar output closed before the archive was finished');
    if (!this.#out.write(chunk)) await drained(this.#out);
  }
}

function drained(out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error): void => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onDrain = (): void => settle();
    const onError = (error: Error): void => settle(error);
    const onClose = (): void => settle(new Error('tar output closed before the archive was finished'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}
