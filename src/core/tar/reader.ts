// Streaming tar reader for layer tars: ustar, GNU and pax, keeping what node-tar drops
// (binary xattrs, devices, fifos). Bodies are passed through as views of the source's
// chunks, so memory stays at a chunk or two whatever the file sizes.

import { ChunkReader } from './chunk-reader.ts';
import type { TarEntry, TarEntryType, TarHeader } from './entry.ts';
import {
  decodeLibarchiveXattrName,
  decodeSchilyXattrName,
  LIBARCHIVE_XATTR,
  parsePaxRecords,
  SCHILY_XATTR,
} from './pax.ts';
import {
  BLOCK_SIZE,
  checksums,
  CHECKSUM,
  DEVMAJOR,
  DEVMINOR,
  type Field,
  fieldEnd,
  GID,
  GNAME,
  GNU_MAGIC,
  LINKNAME,
  MAGIC,
  MODE,
  MTIME,
  NAME,
  paddingAfter,
  POSIX_MAGIC,
  PREFIX,
  readNumber,
  readText,
  SIZE,
  TYPE_BY_FLAG,
  TYPEFLAG_OFFSET,
  UID,
  UNAME,
} from './ustar.ts';

// Extended headers and long names describe one entry; more than this is a corrupt size
// field, not metadata, and must not be buffered.
const METADATA_LIMIT = 16 * 1024 * 1024;

// Like Go's archive/tar (what Docker writes layers with) and Python's tarfile, no data
// follows these whatever their size field says.
const HEADER_ONLY_TYPES: ReadonlySet<TarEntryType> = new Set(['hardlink', 'symlink', 'char', 'block', 'directory', 'fifo']);

/**
 * Entries of a tar stream in order. Each body must be consumed before asking for the next
 * entry or it is skipped; its chunks are views of the source's buffers. Reads the source
 * to its end after the end-of-archive blocks, and closes it if the caller stops early.
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const input = new ChunkReader(source);
  const globals = new Map<string, Buffer>();
  try {
    for (;;) {
      const found = await readHeader(input, globals);
      if (found === null) break;
      const { header, offset } = found;
      const body = new EntryBody(input, header.size, describe(header.path, offset));
      yield { ...header, body };
      body.retire();
      const rest = body.remaining + paddingAfter(header.size);
      if ((await input.skip(rest)) < rest) throw truncated(header.path, offset);
    }
    await input.drain();
  } finally {
    await input.close();
  }
}

class EntryBody implements AsyncIterable<Buffer> {
  remaining: number;
  readonly #input: ChunkReader;
  readonly #label: string;
  #current = true;

  constructor(input: ChunkReader, size: number, label: string) {
    this.#input = input;
    this.remaining = size;
    this.#label = label;
  }

  /** The reader has moved past this entry; its bytes are gone. */
  retire(): void {
    this.#current = false;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      if (!this.#current) throw new Error(`${this.#label}: body read after moving on to the next entry`);
      if (this.remaining === 0) return;
      const piece = await this.#input.next(this.remaining);
      if (piece === null) throw new Error(`${this.#label}: archive truncated, ${this.remaining} bytes of data missing`);
      this.remaining -= piece.length;
      yield piece;
    }
  }
}

interface LocatedHeader {
  header: TarHeader;
  /** Archive offset of the entry's own header block, for error messages. */
  offset: number;
}

/** Reads extended and long-name headers up to the entry they describe; null at the end. */
async function readHeader(input: ChunkReader, globals: Map<string, Buffer>): Promise<LocatedHeader | null> {
  let extended: Map<string, Buffer> | undefined;
  let longPath: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const offset = input.position;
    const block = await input.read(BLOCK_SIZE);
    const pending = extended !== undefined || longPath !== undefined || longLink !== undefined;
    if (block.length === 0 && !pending) return null;
    if (block.length < BLOCK_SIZE) {
      throw new Error(`tar archive truncated: ${block.length} of ${BLOCK_SIZE} header bytes at byte ${offset}`);
    }
    const sums = checksums(block);
    if (sums.zero) {
      if (pending) throw new Error(`tar archive ends at byte ${offset} after an extended header with no entry`);
      return null;
    }
    const stored = readNumber(block, CHECKSUM);
    if (stored !== sums.unsigned && stored !== sums.signed) {
      throw new Error(
        `${describe(readText(block, NAME), offset)}: header checksum mismatch ` +
          `(stored ${stored === undefined ? 'unreadable' : stored}, computed ${sums.unsigned}); not a tar archive or corrupt`,
      );
    }
    const flag = String.fromCharCode(block[TYPEFLAG_OFFSET]!);
    switch (flag) {
      case 'x':
        extended ??= new Map();
        addRecords(extended, await readMetadata(input, block, offset), block, offset);
        continue;
      case 'g':
        addRecords(globals, await readMetadata(input, block, offset), block, offset, true);
        continue;
      case 'L':
        longPath = untilNul(await readMetadata(input, block, offset));
        continue;
      case 'K':
        longLink = untilNul(await readMetadata(input, block, offset));
        continue;
    }
    return { header: decodeHeader(block, offset, flag, mergeRecords(globals, extended), longPath, longLink), offset };
  }
}

async function readMetadata(input: ChunkReader, block: Buffer, offset: number): Promise<Buffer> {
  const name = readText(block, NAME);
  const size = readNumber(block, SIZE);
  if (size === undefined || size < 0 || size > METADATA_LIMIT) {
    throw new Error(`${describe(name, offset)}: extended header size ${size ?? 'unreadable'} is not between 0 and ${METADATA_LIMIT}`);
  }
  const data = await input.read(size);
  const padding = paddingAfter(size);
  if (data.length < size || (await input.skip(padding)) < padding) throw truncated(name, offset);
  return data;
}

/** Adds pax records to a map, later values replacing earlier ones of the same key. */
function addRecords(records: Map<string, Buffer>, data: Buffer, block: Buffer, offset: number, keep = false): void {
  let parsed: Array<[string, Buffer]>;
  try {
    parsed = parsePaxRecords(data);
  } catch (error) {
    throw new Error(`${describe(readText(block, NAME), offset)}: ${(error as Error).message}`);
  }
  // Global values outlive the chunk they were read from; copy so it can be freed.
  for (const [key, value] of parsed) records.set(key, keep ? Buffer.from(value) : value);
}

function mergeRecords(globals: Map<string, Buffer>, extended: Map<string, Buffer> | undefined): Map<string, Buffer> | undefined {
  if (globals.size === 0) return extended;
  if (extended === undefined) return globals;
  return new Map([...globals, ...extended]);
}

function isXattrKey(key: string): boolean {
  return key.startsWith(SCHILY_XATTR) || key.startsWith(LIBARCHIVE_XATTR);
}

function decodeHeader(
  block: Buffer,
  offset: number,
  flag: string,
  records: Map<string, Buffer> | undefined,
  longPath: string | undefined,
  longLink: string | undefined,
): TarHeader {
  const posix = block.compare(POSIX_MAGIC, 0, 6, MAGIC.offset, MAGIC.offset + 6) === 0;
  const ustar = posix || block.compare(GNU_MAGIC, 0, 6, MAGIC.offset, MAGIC.offset + 6) === 0;
  const prefix = posix ? readText(block, PREFIX) : '';
  let path = longPath ?? (prefix === '' ? readText(block, NAME) : `${prefix}/${readText(block, NAME)}`);
  const number = (field: Field, label: string): number => {
    const value = readNumber(block, field);
    if (value === undefined) throw new Error(`${describe(path, offset)}: unreadable ${label} field`);
    return value;
  };
  const type = TYPE_BY_FLAG.get(flag);
  const device = ustar && (type === 'char' || type === 'block');
  // An unknown type is refused only after pax records are applied, so the error names the
  // entry's real path; until then it stands in as a file.
  const header: TarHeader = {
    path,
    type: type ?? 'file',
    mode: number(MODE, 'mode') & 0o7777,
    uid: number(UID, 'uid'),
    gid: number(GID, 'gid'),
    uname: ustar ? readText(block, UNAME) : '',
    gname: ustar ? readText(block, GNAME) : '',
    size: number(SIZE, 'size'),
    mtime: number(MTIME, 'mtime'),
    linkname: longLink ?? readText(block, LINKNAME),
    devmajor: device ? number(DEVMAJOR, 'devmajor') : 0,
    devminor: device ? number(DEVMINOR, 'devminor') : 0,
    xattrs: new Map(),
  };
  if (records !== undefined) applyRecords(header, records, offset);
  path = header.path;
  if (flag === 'S') throw new Error(`${describe(path, offset)}: sparse files (GNU type 'S') are not supported`);
  if (type === undefined) throw new Error(`${describe(path, offset)}: unsupported entry type ${JSON.stringify(flag)}`);
  if (header.size < 0 || header.size > Number.MAX_SAFE_INTEGER) throw new Error(`${describe(path, offset)}: invalid size ${header.size}`);
  if (header.uid < 0 || header.gid < 0) throw new Error(`${describe(path, offset)}: negative uid or gid`);
  if (HEADER_ONLY_TYPES.has(type)) header.size = 0;
  return header;
}

function applyRecords(header: TarHeader, records: Map<string, Buffer>, offset: number): void {
  // GNU keeps a sparse file's real name in GNU.sparse.name; path is a made-up stand-in.
  const sparseName = records.get('GNU.sparse.name') ?? records.get('path');
  for (const key of records.keys()) {
    if (key.startsWith('GNU.sparse.')) {
      const path = sparseName?.toString('utf8') ?? header.path;
      throw new Error(`${describe(path, offset)}: sparse files (pax ${key}) are not supported`);
    }
  }
  for (const [key, value] of records) {
    // An empty value unsets a keyword, so the ustar field applies again; xattr values
    // may legitimately be empty.
    if (value.length === 0 && !isXattrKey(key)) continue;
    const decimal = (label: string, pattern: RegExp): number => {
      const text = value.toString('latin1');
      const number = Number(text);
      if (!pattern.test(text) || !Number.isSafeInteger(Math.trunc(number))) {
        throw new Error(`${describe(header.path, offset)}: invalid pax ${label} ${JSON.stringify(text)}`);
      }
      return number;
    };
    switch (key) {
      case 'path':
        header.path = value.toString('utf8');
        break;
      case 'linkpath':
        header.linkname = value.toString('utf8');
        break;
      case 'uname':
        header.uname = value.toString('utf8');
        break;
      case 'gname':
        header.gname = value.toString('utf8');
        break;
      case 'size':
        header.size = decimal('size', /^\d+$/);
        break;
      case 'uid':
        header.uid = decimal('uid', /^\d+$/);
        break;
      case 'gid':
        header.gid = decimal('gid', /^\d+$/);
        break;
      case 'mtime':
        header.mtime = decimal('mtime', /^-?\d+(\.\d+)?$/);
        break;
      default:
        // Copied: the header may outlive the source chunk the value is a view of.
        if (key.startsWith(SCHILY_XATTR)) {
          header.xattrs.set(decodeSchilyXattrName(key.slice(SCHILY_XATTR.length)), Buffer.from(value));
        } else if (key.startsWith(LIBARCHIVE_XATTR)) {
          header.xattrs.set(decodeLibarchiveXattrName(key.slice(LIBARCHIVE_XATTR.length)), Buffer.from(value.toString('latin1'), 'base64'));
        }
    }
  }
}

function untilNul(data: Buffer): string {
  return data.toString('utf8', 0, fieldEnd(data, { offset: 0, length: data.length }));
}

function describe(path: string, offset: number): string {
  return `tar entry ${JSON.stringify(path)} (header at byte ${offset})`;
}

function truncated(path: string, offset: number): Error {
  return new Error(`${describe(path, offset)}: archive truncated`);
}
