// The stat-like record the reader hands out, decoded from a catalog row (doc §2.4, §2.5).
import { hash } from 'node:crypto';
import type { StoredRow } from './catalog.ts';
import { CvmfsError } from './errors.ts';
import { algorithmFromFlagValue, contentHashFromDigest, type ContentHash } from './hash.ts';
import type { Compression } from './object-fetcher.ts';
import { expandVariantSymlink, type SymlinkEnvironment } from './variant-symlink.ts';
import { parseXattrs } from './xattr.ts';

export type EntryType = 'dir' | 'file' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';

export interface Entry {
  /** Repository path: "/" for the root, "/a/b" below it. */
  path: string;
  name: string;
  type: EntryType;
  /** st_mode including the file type bits and setuid/setgid/sticky. */
  mode: number;
  /** Owner as published; (uid_t)-1 is 4294967295 (a FUSE mount shows the overflow id for it). */
  uid: number;
  gid: number;
  /** What stat reports: the target length for symlinks, 0 for devices, else the catalog size. */
  size: number;
  /** The catalog's size column verbatim (dev_t for devices, often 0 for symlinks). */
  catalogSize: number;
  mtime: number;
  /** Nanoseconds of mtime, or null when the publisher did not record them. */
  mtimeNs: number | null;
  /** Link count: 2 + subdirectories for directories, hardlink group size for files. */
  nlink: number;
  /** Non-zero for members of one hardlink group (same catalog, same directory). */
  hardlinkGroup: number;
  /** Stable id for the kernel: per path, or shared by a hardlink group. */
  inode: bigint;
  /** Symlink target with $(VAR) substituted, as the client shows it; null for non-symlinks. */
  symlink: string | null;
  rdev: { major: number; minor: number } | null;
  xattrs: ReadonlyMap<string, Buffer> | null;
  chunked: boolean;
  /** Content lives outside the repository (CVMFS_EXTERNAL_URL); not readable here. */
  external: boolean;
  /** Hash of the whole-file object (regular, non-chunked files). */
  contentHash: ContentHash | null;
  compression: Compression;
  flags: number;
  /** Mountpoint of the catalog holding the row; "/" for the root catalog. */
  catalogMountpoint: string;
  /** The row is where a nested catalog is mounted (listing it enters that catalog). */
  nestedCatalogMountpoint: boolean;
}

export const FLAGS = {
  dir: 1,
  nestedMountpoint: 2,
  file: 4,
  link: 8,
  special: 16,
  nestedRoot: 32,
  chunked: 64,
  external: 128,
  hidden: 0x8000,
} as const;

/** The S_IFMT bits of each entry type; the client takes the type from these, not from the flags. */
export const TYPE_BITS: Readonly<Record<EntryType, number>> = {
  dir: 0o040000,
  file: 0o100000,
  symlink: 0o120000,
  fifo: 0o010000,
  chardev: 0o020000,
  blockdev: 0o060000,
  socket: 0o140000,
};

export const TYPE_MASK = 0o170000;

const TYPES_BY_FORMAT: Readonly<Record<number, EntryType>> = Object.fromEntries(
  Object.entries(TYPE_BITS).map(([type, bits]) => [bits, type as EntryType]),
);

function toPublicPath(path: string): string {
  return path === '' ? '/' : path;
}

export function decodeEntry(row: StoredRow, catalogMountpoint: string, environment: SymlinkEnvironment): Entry {
  const where = toPublicPath(row.path);
  // The client takes the type from the mode bits, not from the flags.
  const type = TYPES_BY_FORMAT[row.mode & TYPE_MASK];
  if (type === undefined) throw new CvmfsError('bad-catalog', `${where} has mode ${row.mode.toString(8)} with no valid file type`);
  const algorithm = algorithmFromFlagValue((row.flags >> 8) & 7);
  const symlink = type === 'symlink' ? expandVariantSymlink(row.symlink, environment) : null;
  const hardlinkGroup = Number(row.hardlinks >> 32n);
  const isDevice = type === 'chardev' || type === 'blockdev';
  let size = row.size;
  if (symlink !== null) size = Buffer.byteLength(symlink);
  else if (isDevice) size = 0;
  return {
    path: where,
    name: row.name,
    type,
    mode: row.mode,
    uid: row.uid,
    gid: row.gid,
    size,
    catalogSize: row.size,
    mtime: row.mtime,
    mtimeNs: row.mtimeNs,
    nlink: Number(row.hardlinks & 0xffffffffn),
    hardlinkGroup,
    inode: hardlinkGroup > 0 ? hardlinkInode(catalogMountpoint, hardlinkGroup) : pathInode(row.md5path1),
    symlink,
    rdev: isDevice ? decodeDevice(row.size) : null,
    xattrs: row.xattr === null ? null : parseXattrs(row.xattr, where),
    chunked: (row.flags & FLAGS.chunked) !== 0,
    external: (row.flags & FLAGS.external) !== 0,
    contentHash: row.hash === null ? null : contentHashFromDigest(algorithm, row.hash),
    compression: ((row.flags >> 11) & 7) === 1 ? 'none' : 'zlib',
    flags: row.flags,
    catalogMountpoint: toPublicPath(catalogMountpoint),
    nestedCatalogMountpoint: (row.flags & FLAGS.nestedMountpoint) !== 0,
  };
}

/** Hash algorithm of a file's content and chunks, from its flags. */
export function contentAlgorithm(entry: Entry): ContentHash['algorithm'] {
  return algorithmFromFlagValue((entry.flags >> 8) & 7);
}

// glibc's dev_t encoding (gnu_dev_makedev / gnu_dev_major / gnu_dev_minor), which is what the
// catalog stores in the size column of devices.
export function encodeDevice(major: number, minor: number): number {
  const [high, low] = [BigInt(major), BigInt(minor)];
  return Number(((high & ~0xfffn) << 32n) | ((high & 0xfffn) << 8n) | ((low & ~0xffn) << 12n) | (low & 0xffn));
}

function decodeDevice(dev: number): { major: number; minor: number } {
  const value = BigInt(dev);
  return {
    major: Number(((value >> 8n) & 0xfffn) | ((value >> 32n) & ~0xfffn)),
    minor: Number((value & 0xffn) | ((value >> 12n) & ~0xffn)),
  };
}

// Inodes are 63-bit ids from MD5s: stable across processes and revisions, so the kernel's caches
// stay valid, and collisions are as unlikely as MD5 path-hash collisions in the catalogs themselves.
// A path's is its md5path_1, which the catalog holds already; a hardlink group's is hashed apart.
function pathInode(md5path1: bigint): bigint {
  return BigInt.asUintN(64, md5path1) >> 1n;
}

function hardlinkInode(catalogMountpoint: string, group: number): bigint {
  return hash('md5', `hardlink\0${catalogMountpoint}\0${group}`, 'buffer').readBigUInt64LE(0) >> 1n;
}
