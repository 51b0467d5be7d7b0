// The ustar header block: where its fields sit and how their numbers and checksum are
// spelled. Shared by the reader and the writer so both agree on every byte.

import type { TarEntryType } from './entry.ts';

export const BLOCK_SIZE = 512;

export interface Field {
  offset: number;
  length: number;
}

export const NAME: Field = { offset: 0, length: 100 };
export const MODE: Field = { offset: 100, length: 8 };
export const UID: Field = { offset: 108, length: 8 };
export const GID: Field = { offset: 116, length: 8 };
export const SIZE: Field = { offset: 124, length: 12 };
export const MTIME: Field = { offset: 136, length: 12 };
export const CHECKSUM: Field = { offset: 148, length: 8 };
export const TYPEFLAG_OFFSET = 156;
export const LINKNAME: Field = { offset: 157, length: 100 };
export const MAGIC: Field = { offset: 257, length: 8 };
export const UNAME: Field = { offset: 265, length: 32 };
export const GNAME: Field = { offset: 297, length: 32 };
export const DEVMAJOR: Field = { offset: 329, length: 8 };
export const DEVMINOR: Field = { offset: 337, length: 8 };
/** POSIX ustar only: GNU headers keep atime, ctime and sparse data here instead. */
export const PREFIX: Field = { offset: 345, length: 155 };

/** Magic and version of POSIX ustar ("ustar\0" "00"). */
export const POSIX_MAGIC = Buffer.from('ustar\x0000', 'latin1');
/** Magic and version of GNU tar's own format ("ustar " " \0"). */
export const GNU_MAGIC = Buffer.from('ustar  \x00', 'latin1');

/** Largest number an octal field holds with the terminating NUL that POSIX requires. */
export function octalLimit(field: Field): number {
  return 8 ** (field.length - 1) - 1;
}

export const TYPE_BY_FLAG: ReadonlyMap<string, TarEntryType> = new Map<string, TarEntryType>([
  ['0', 'file'],
  ['\0', 'file'],
  ['7', 'file'], // contiguous file: a plain file everywhere but a few 1980s systems
  ['1', 'hardlink'],
  ['2', 'symlink'],
  ['3', 'char'],
  ['4', 'block'],
  ['5', 'directory'],
  ['6', 'fifo'],
]);

export const FLAG_BY_TYPE: Readonly<Record<TarEntryType, string>> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

const SPACE = 0x20;

export interface Checksums {
  /** Sum of the bytes with the checksum field counted as spaces. */
  unsigned: number;
  /** The same over signed chars, which some old writers used; GNU tar accepts either. */
  signed: number;
  /** Every byte is zero: an end-of-archive block. */
  zero: boolean;
}

export function checksums(block: Buffer): Checksums {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const byte = block[i]!;
    unsigned += byte;
    signed += (byte << 24) >> 24;
  }
  const zero = unsigned === 0;
  for (let i = CHECKSUM.offset; i < CHECKSUM.offset + CHECKSUM.length; i++) {
    const byte = block[i]!;
    unsigned += SPACE - byte;
    signed += SPACE - ((byte << 24) >> 24);
  }
  return { unsigned, signed, zero };
}

/** Text of a field up to its first NUL (fields that fill their width have none). */
export function readText(block: Buffer, field: Field): string {
  const end = fieldEnd(block, field);
  return block.toString('utf8', field.offset, end);
}

export function fieldEnd(block: Buffer, field: Field): number {
  const limit = field.offset + field.length;
  const nul = block.indexOf(0, field.offset);
  return nul === -1 || nul > limit ? limit : nul;
}

/**
 * A numeric field: octal digits padded with spaces or NULs, or GNU's base-256 (two's
 * complement, big-endian, flagged by the top bit of the first byte) for values octal
 * cannot hold. Returns undefined for text that is neither, so callers can name the field.
 */
export function readNumber(block: Buffer, field: Field): number | undefined {
  const start = field.offset;
  const end = start + field.length;
  if (block[start]! & 0x80) return readBase256(block, start, end);
  let i = start;
  while (i < end && block[i] === SPACE) i++;
  let value = 0;
  for (; i < end; i++) {
    const byte = block[i]!;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
  }
  for (; i < end; i++) {
    const byte = block[i]!;
    if (byte !== SPACE && byte !== 0) return undefined;
  }
  return value;
}

function readBase256(block: Buffer, start: number, end: number): number | undefined {
  // -a-1 == ~a: invert a negative number's bytes and read them as unsigned.
  const invert = block[start]! & 0x40 ? 0xff : 0;
  let value = (block[start]! ^ invert) & 0x7f;
  for (let i = start + 1; i < end; i++) {
    value = value * 256 + (block[i]! ^ invert);
    if (value > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return invert ? -value - 1 : value;
}

/** Writes zero-padded octal digits followed by a NUL; the caller checks octalLimit. */
export function writeOctal(block: Buffer, field: Field, value: number): void {
  const digits = value.toString(8).padStart(field.length - 1, '0');
  block.write(digits, field.offset, field.length - 1, 'latin1');
  block[field.offset + field.length - 1] = 0;
}

/** Checksum as GNU tar spells it: six octal digits, NUL, space. */
export function writeChecksum(block: Buffer): void {
  block.fill(SPACE, CHECKSUM.offset, CHECKSUM.offset + CHECKSUM.length);
  const { unsigned } = checksums(block);
  block.write(unsigned.toString(8).padStart(6, '0'), CHECKSUM.offset, 6, 'latin1');
  block[CHECKSUM.offset + 6] = 0;
}

/** Bytes of zeros that follow `size` bytes of data to complete its last block. */
export function paddingAfter(size: number): number {
  const tail = size % BLOCK_SIZE;
  return tail === 0 ? 0 : BLOCK_SIZE - tail;
}
