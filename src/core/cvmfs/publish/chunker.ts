// Content-defined chunking as the cvmfs publisher does it (ingestion/chunk_detector.cc, "xor32"):
// a rolling value x = (x << 1) ^ byte depends on the last 32 bytes only; a chunk ends before the
// byte at which x comes within 0xFFFFFFFF / average of 0x7FFFFFFF, but never before `min` bytes
// and at the latest after `max` bytes. Cutting where the real tool cuts means identical files
// produce identical chunk objects, so they deduplicate against repositories it published.

export interface ChunkSizes {
  minSize: number;
  averageSize: number;
  maxSize: number;
}

/** CVMFS_MIN/AVG/MAX_CHUNK_SIZE defaults of cvmfs_server. */
export const DEFAULT_CHUNK_SIZES: ChunkSizes = { minSize: 4 * 1024 * 1024, averageSize: 8 * 1024 * 1024, maxSize: 16 * 1024 * 1024 };

const WINDOW = 32;
const MAGIC = 0x7fffffff;

export function checkChunkSizes(sizes: ChunkSizes): void {
  const { minSize, averageSize, maxSize } = sizes;
  if (!(Number.isSafeInteger(minSize) && minSize >= WINDOW && minSize < averageSize && averageSize < maxSize && Number.isSafeInteger(maxSize))) {
    throw new Error(`chunk sizes must satisfy ${WINDOW} <= min < average < max, got min ${minSize}, average ${averageSize}, max ${maxSize}`);
  }
}

/** Whether a file of `size` bytes is worth running through the chunker at all (the real rule). */
export function mightChunk(size: number, sizes: ChunkSizes): boolean {
  return size > sizes.minSize;
}

/** The pieces of a byte stream, cut as the real publisher cuts them. */
export async function* cutChunks(body: AsyncIterable<Uint8Array>, sizes: ChunkSizes): AsyncGenerator<Buffer> {
  const threshold = Math.floor(0xffffffff / sizes.averageSize);
  let pieceParts: Uint8Array[] = [];
  let pieceLength = 0;
  let x = 0;
  for await (const block of body) {
    let start = 0;
    let index = 0;
    while (index < block.length) {
      // pieceLength + (index - start) is the offset of block[index] within the current piece.
      const atOffset = pieceLength + index - start;
      if (atOffset < sizes.minSize - WINDOW) {
        index += Math.min(block.length - index, sizes.minSize - WINDOW - atOffset);
        continue;
      }
      const precomputeEnd = Math.min(block.length, index + Math.max(0, sizes.minSize - atOffset));
      for (; index < precomputeEnd; index++) x = (x << 1) ^ block[index]!;
      const scanEnd = Math.min(block.length, index + (sizes.maxSize - (pieceLength + index - start)));
      let cutAt = -1;
      for (; index < scanEnd; index++) {
        x = (x << 1) ^ block[index]!;
        const distance = (x - MAGIC) | 0;
        if (distance > -threshold && distance < threshold) {
          cutAt = index;
          break;
        }
      }
      if (cutAt < 0 && pieceLength + index - start === sizes.maxSize) cutAt = index;
      if (cutAt < 0) break;
      pieceParts.push(block.subarray(start, cutAt));
      yield Buffer.concat(pieceParts, pieceLength + cutAt - start);
      pieceParts = [];
      pieceLength = 0;
      x = 0;
      start = cutAt;
      index = cutAt;
    }
    if (start < block.length) {
      pieceParts.push(block.subarray(start));
      pieceLength += block.length - start;
    }
  }
  if (pieceLength > 0) yield Buffer.concat(pieceParts, pieceLength);
}
