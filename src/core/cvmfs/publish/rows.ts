// Catalog rows for each kind of entry, with the column values the real tar ingest writes
// (doc §2.4, §2.5; the fixture's catalogs): directories 4096 bytes, symlinks size 0, devices
// their dev_t in `size`, text columns never NULL, `hash` NULL unless there is content.
import type { CatalogRow } from '../catalog.ts';
import { encodeDevice, FLAGS, TYPE_BITS, TYPE_MASK, type EntryType } from '../entry.ts';
import { algorithmFlagValue, type ContentHash, type HashAlgorithm } from '../hash.ts';

const DIRECTORY_SIZE = 4096;

/** What every entry has, whatever its type. */
export interface EntryAttributes {
  /** Permission bits including setuid, setgid and sticky (mask 0o7777). */
  permissions: number;
  uid: number;
  gid: number;
  /** Seconds; the real ingest records no nanoseconds. */
  mtime: number;
  xattr: Buffer | null;
}

function baseRow(path: string, type: EntryType, attributes: EntryAttributes): CatalogRow {
  return {
    path,
    name: path.slice(path.lastIndexOf('/') + 1),
    hardlinks: 1n,
    hash: null,
    size: 0,
    mode: TYPE_BITS[type] | (attributes.permissions & 0o7777),
    mtime: attributes.mtime,
    mtimeNs: null,
    flags: FLAGS.file,
    symlink: '',
    uid: attributes.uid,
    gid: attributes.gid,
    xattr: attributes.xattr,
  };
}

/** A directory; its link count (2 + subdirectories) is settled when the catalog is committed. */
export function directoryRow(path: string, attributes: EntryAttributes): CatalogRow {
  return { ...baseRow(path, 'dir', attributes), hardlinks: 2n, size: DIRECTORY_SIZE, flags: FLAGS.dir };
}

/** What a regular file's content became: one object, or chunks listed in the `chunks` table. */
export type FileContent = { size: number; algorithm: HashAlgorithm } & ({ chunked: false; hash: ContentHash } | { chunked: true });

export function fileRow(path: string, attributes: EntryAttributes, content: FileContent): CatalogRow {
  const algorithmBits = algorithmFlagValue(content.algorithm) << 8;
  return {
    ...baseRow(path, 'file', attributes),
    size: content.size,
    hash: content.chunked ? null : Buffer.from(content.hash.hex, 'hex'),
    flags: FLAGS.file | algorithmBits | (content.chunked ? FLAGS.chunked : 0),
  };
}

export function symlinkRow(path: string, attributes: EntryAttributes, target: string): CatalogRow {
  return { ...baseRow(path, 'symlink', attributes), symlink: target, flags: FLAGS.file | FLAGS.link };
}

export function specialRow(path: string, attributes: EntryAttributes, type: 'fifo' | 'socket' | 'chardev' | 'blockdev', device = { major: 0, minor: 0 }): CatalogRow {
  const isDevice = type === 'chardev' || type === 'blockdev';
  return {
    ...baseRow(path, type, attributes),
    size: isDevice ? encodeDevice(device.major, device.minor) : 0,
    flags: FLAGS.file | FLAGS.special,
  };
}

export function isDirectoryRow(row: CatalogRow): boolean {
  return (row.mode & TYPE_MASK) === TYPE_BITS.dir;
}
