// Blobs, streamed and verified as they stream: bytes beyond the descriptor's size are refused
// at once, and the digest and size are checked before the stream ends, so a consumer sees an
// error instead of an end for content that does not match. A connection that breaks mid-blob
// is resumed with an HTTP Range request from the last byte passed on.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RegistryClient } from './client.ts';
import { ContentVerifier, type ExpectedContent } from './digest.ts';
import { RegistryError } from './errors.ts';
import { networkError } from './http.ts';
import { pauseBeforeRetry } from './retry.ts';

/** Called as bytes arrive (and once with 0 at the start), for progress bars. */
export type BlobProgress = (bytesDone: number, bytesTotal: number) => void;

export interface BlobReadOptions {
  onProgress?: BlobProgress;
}

/** Blobs read whole into memory (configs) are refused above this size unless told otherwise. */
const DEFAULT_MAX_IN_MEMORY = 16 * 1024 * 1024;

/** The blob as a byte stream; it fails rather than ends when the content does not verify. */
export function openBlob(client: RegistryClient, repository: string, blob: ExpectedContent, options: BlobReadOptions = {}): Readable {
  return Readable.from(verifiedChunks(client, repository, blob, options), { objectMode: false });
}

/**
 * Writes the blob to `path` through `<path>.partial`, renamed into place once verified; on any
 * failure nothing is left at either path.
 */
export async function downloadBlob(
  client: RegistryClient,
  repository: string,
  blob: ExpectedContent,
  path: string,
  options: BlobReadOptions = {},
): Promise<void> {
  const partial = `${path}.partial`;
  try {
    await pipeline(verifiedChunks(client, repository, blob, options), createWriteStream(partial));
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** The whole blob in memory, for small JSON blobs such as image configs. */
export async function readBlob(client: RegistryClient, repository: string, blob: ExpectedContent, maxBytes = DEFAULT_MAX_IN_MEMORY): Promise<Buffer> {
  if (blob.size > maxBytes) {
    const what = `${client.registry}: blob ${blob.digest} of ${repository}`;
    throw new RegistryError('unsupported', `${what} has ${blob.size} bytes, more than the ${maxBytes} read into memory`);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of verifiedChunks(client, repository, blob, {})) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* verifiedChunks(client: RegistryClient, repository: string, blob: ExpectedContent, options: BlobReadOptions): AsyncGenerator<Buffer> {
  const what = `blob ${blob.digest} of ${repository}`;
  const verifier = new ContentVerifier(blob, `${client.registry}: ${what}`);
  const url = client.apiUrl(repository, `blobs/${blob.digest}`);
  options.onProgress?.(0, blob.size);
  // Failures in a row without a byte of progress; a slow, flaky link that keeps advancing may
  // need more attempts in all than the policy allows in a row.
  let failures = 0;
  while (verifier.bytes < blob.size) {
    const start = verifier.bytes;
    try {
      // Compressed layers must arrive as stored; a transparently decoded body would not verify.
      const headers: Record<string, string> = { 'accept-encoding': 'identity' };
      if (start > 0) headers.range = `bytes=${start}-`;
      const response = await client.request(url, { repository, access: 'pull', what, headers });
      // A server that ignores Range sends everything again; skip what was passed on already.
      let skip = start > 0 && response.status !== 206 ? start : 0;
      if (start > 0 && response.status === 206) checkContentRange(response, start, `${client.registry}: ${what}`);
      for await (const received of responseChunks(response, `${client.registry}: ${what}: connection lost`)) {
        let chunk = received;
        if (skip > 0) {
          const skipped = Math.min(skip, chunk.length);
          skip -= skipped;
          chunk = chunk.subarray(skipped);
          if (chunk.length === 0) continue;
        }
        verifier.update(chunk);
        yield chunk;
        options.onProgress?.(verifier.bytes, blob.size);
      }
      if (verifier.bytes < blob.size) {
        throw new RegistryError('unreachable', `${client.registry}: ${what}: the response ended after ${verifier.bytes} of ${blob.size} bytes`);
      }
    } catch (error) {
      if (verifier.bytes > start) failures = 0;
      failures++;
      const next = verifier.bytes > 0 ? `resuming at byte ${verifier.bytes} of ${blob.size}` : undefined;
      if (!(await pauseBeforeRetry(client.retryPolicy, failures, error, next))) throw error;
    }
  }
  verifier.finish();
}

/** The body's chunks, with a broken connection reported as the transient RegistryError it is. */
async function* responseChunks(response: Response, context: string): AsyncGenerator<Buffer> {
  if (response.body === null) return;
  try {
    for await (const chunk of response.body) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  } catch (error) {
    throw networkError(context, error);
  }
}

function checkContentRange(response: Response, start: number, what: string): void {
  const range = response.headers.get('content-range') ?? '';
  const match = /^bytes (\d+)-/.exec(range);
  if (match === null || Number(match[1]) !== start) {
    throw new RegistryError('protocol', `${what}: asked for bytes from ${start}, got Content-Range ${JSON.stringify(range)}`);
  }
}
