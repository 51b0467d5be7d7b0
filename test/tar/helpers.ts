// Shared pieces of the tar tests: temp dirs that clean up after themselves, collecting an
// archive's entries with their bodies, and building raw header blocks by hand so reader
// tests do not depend on the project's own header encoder.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { TestContext } from 'node:test';
import { tarHeader, type TarHeader } from '../../src/core/tar/entry.ts';
import { readTar } from '../../src/core/tar/reader.ts';
import { TarWriter } from '../../src/core/tar/writer.ts';

export async function makeTempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tar-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface ReadEntry extends TarHeader {
  data: Buffer;
}

/** Every entry of an archive with its body read in full. */
export async function readAll(source: AsyncIterable<Buffer>): Promise<ReadEntry[]> {
  const entries: ReadEntry[] = [];
  for await (const { body, ...header } of readTar(source)) {
    const pieces: Buffer[] = [];
    for await (const piece of body) pieces.push(Buffer.from(piece));
    entries.push({ ...header, data: Buffer.concat(pieces) });
  }
  return entries;
}

/** An archive as a stream of `size`-byte chunks, to move chunk boundaries around. */
export async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

export function makeHeader(fields: Partial<TarHeader> & Pick<TarHeader, 'path'>): TarHeader {
  return tarHeader({ mtime: 1_600_000_000, ...fields });
}

/** Writes entries with TarWriter and returns the whole archive. */
export async function writeArchive(entries: ReadonlyArray<readonly [TarHeader, Buffer?]>): Promise<Buffer> {
  const out = new PassThrough();
  const collected = collect(out);
  const writer = new TarWriter(out);
  for (const [header, body] of entries) await writer.add(header, body);
  await writer.finish();
  return collected;
}

export async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece);
  return Buffer.concat(pieces);
}

export interface RawFields {
  name: string;
  flag: string;
  size?: number;
  mode?: number;
  mtime?: number;
  linkname?: string;
  /** Bytes written into the size field instead of octal digits (base-256 tests). */
  sizeField?: Buffer;
  /** Use the old signed-char checksum. */
  signedChecksum?: boolean;
  /** Leave out the ustar magic, as a V7 tar would. */
  v7?: boolean;
}

/** One header block, laid out by hand from the ustar spec. */
export function rawHeader(fields: RawFields): Buffer {
  const block = Buffer.alloc(512);
  const octal = (offset: number, width: number, value: number): void => {
    block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, 'latin1');
  };
  block.write(fields.name, 0, 100, 'utf8');
  octal(100, 8, fields.mode ?? 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  if (fields.sizeField) fields.sizeField.copy(block, 124);
  else octal(124, 12, fields.size ?? 0);
  octal(136, 12, fields.mtime ?? 1_600_000_000);
  block.write(fields.flag, 156, 1, 'latin1');
  block.write(fields.linkname ?? '', 157, 100, 'utf8');
  if (!fields.v7) block.write('ustar\u000000', 257, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += fields.signedChecksum && byte > 127 ? byte - 256 : byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** A header followed by its data padded to whole blocks. */
export function rawEntry(fields: RawFields, data: Buffer = Buffer.alloc(0)): Buffer {
  const padding = (512 - (data.length % 512)) % 512;
  return Buffer.concat([rawHeader({ size: data.length, ...fields }), data, Buffer.alloc(padding)]);
}

/** pax records "<len> <key>=<value>\n", the length found by trying until it agrees. */
export function rawPax(records: ReadonlyArray<readonly [string, Buffer | string]>): Buffer {
  return Buffer.concat(
    records.map(([key, value]) => {
      const tail = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
      let length = tail.length;
      while (String(length).length + tail.length !== length) length = String(length).length + tail.length;
      return Buffer.concat([Buffer.from(String(length)), tail]);
    }),
  );
}

export const END_OF_ARCHIVE = Buffer.alloc(1024);
