// Where repository files come from: a local storage directory or HTTP mirrors. Paths are relative
// to the repository base (".cvmfspublished", "data/ab/cdef…C").
import type { Readable } from 'node:stream';

/**
 * Receives one response body. Throwing rejects that copy (bad hash, broken stream), and a source
 * with several mirrors then tries the next one; nothing consumed from a rejected copy may be kept.
 */
export type BodyConsumer<T> = (body: Readable, location: string) => Promise<T>;

export interface ObjectSource {
  /** Where the repository is read from, for messages. */
  readonly description: string;
  fetch<T>(relativePath: string, consume: BodyConsumer<T>): Promise<T>;
  /** Releases connections; later fetches are not allowed. */
  close(): void;
}
