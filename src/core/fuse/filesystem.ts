// The contract between the FUSE server and what it serves. Everything is read-only and async;
// inodes are bigints (the CernVM-FS reader hands out 63-bit ids). A method answers a request
// with an errno by throwing a FuseError.

/** The stat record of one inode. */
export interface Attr {
  /**
   * st_ino, which is also the node id the kernel keeps for the entry: entries with the same ino
   * are one inode to the kernel (hardlinks), so it must be stable for the life of the mount.
   */
  ino: bigint;
  /** File type bits and permissions, e.g. FILE_TYPE.REGULAR | 0o644. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Device number of a character or block device (see makeDevice); 0 for anything else. */
  rdev: number;
  /** Bytes; for a symlink the length of its target. */
  size: number;
  /** Allocated 512-byte blocks, as `du` counts them. */
  blocks: number;
  /** Seconds since the epoch, with optional nanoseconds. */
  atime: number;
  atimeNs?: number;
  mtime: number;
  mtimeNs?: number;
  ctime: number;
  ctimeNs?: number;
}

export interface DirEntry {
  name: string;
  attr: Attr;
}

/** One name of a lookup table: what lookup returns for it, and whether it has extended attributes. */
export interface TableEntry {
  attr: Attr;
  /** False promises that getxattr finds nothing and listxattr lists nothing for it. */
  xattrs: boolean;
  /** A symlink's target, as readlink gives it. */
  symlink?: string;
}

/** A directory's lookup table (see ReadOnlyFilesystem.lookupTable). */
export interface LookupTable {
  /** Every name lookup finds, with what lookup returns for it; any other name is not found. */
  entries: ReadonlyMap<string, TableEntry>;
  /**
   * What readdir gives for the directory, if the server may answer listings from the table:
   * "." and ".." first, then names that `entries` has with the same ino. Absent otherwise.
   */
  listing?: readonly DirEntry[];
}

export interface StatFs {
  /** Totals in units of frsize. */
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  frsize: number;
  /** Longest name allowed. */
  namelen: number;
}

/** How long the kernel may trust what it was told, in seconds. */
export interface CacheTimeouts {
  /** A name → inode mapping from lookup or readdirplus. */
  entry: number;
  /** An inode's attributes. */
  attr: number;
  /** A name that lookup did not find (0 disables negative caching). */
  negative: number;
}

/** Content never changes under a mount, so the kernel may keep everything for a day. */
export const DEFAULT_CACHE_TIMEOUTS: CacheTimeouts = { entry: 86_400, attr: 86_400, negative: 86_400 };

export interface ReadOnlyFilesystem {
  /** The root directory's ino (the kernel always calls the root node 1); 1n when absent. */
  readonly rootIno?: bigint;
  /** Overrides of DEFAULT_CACHE_TIMEOUTS. */
  readonly cacheTimeouts?: Partial<CacheTimeouts>;

  /** The entry `name` in directory `parent`; ENOENT when there is none. */
  lookup(parent: bigint, name: string): Promise<Attr>;
  getattr(ino: bigint): Promise<Attr>;
  readlink(ino: bigint): Promise<string>;
  /** A handle passed to read and release; 0n when absent. */
  open?(ino: bigint): Promise<bigint>;
  /**
   * Fills `target` with the file's bytes at `offset`, fewer only at the end of the file, and
   * returns how many. The server reuses its buffers: `target` is for this call only.
   */
  read(ino: bigint, handle: bigint, offset: number, target: Buffer): Promise<number>;
  release?(ino: bigint, handle: bigint): Promise<void>;
  /**
   * A local file holding exactly the bytes of regular file `ino`, made ready (fetched) if need
   * be, or null when it has none; with `cachedOnly`, only one that is ready already (null rather
   * than fetching anything). Where the kernel supports passthrough, opens of the file are then
   * served from it by the kernel itself, without read() here; a failure fails the open.
   */
  backingFile?(ino: bigint, options?: { cachedOnly?: boolean }): Promise<string | null>;
  /**
   * A handle passed to readdir and releasedir. Absent, the kernel reads directories without
   * opening them here, and readdir gets handle 0n.
   */
  opendir?(ino: bigint): Promise<bigint>;
  /**
   * The whole listing, in the same order every time (the kernel resumes listings by position),
   * including '.' and '..' when they should be listed. Called once per opened directory (or,
   * without opendir, whenever the server no longer keeps the directory's last listing): the
   * server keeps the listing and pages it out to the kernel.
   */
  readdir(ino: bigint, handle: bigint): Promise<readonly DirEntry[]>;
  releasedir?(ino: bigint, handle: bigint): Promise<void>;
  /**
   * The lookup table of directory `parent`, or null when it has more than `maxNames` names. The
   * server may then answer lookups there, extended attribute queries on entries without any,
   * readlink of its symlinks and listings of it without asking; it counts these inos as held
   * (see forgetInode) while it may still hand them out.
   */
  lookupTable?(parent: bigint, maxNames: number): Promise<LookupTable | null>;
  /** All zeros (with bsize 4096, namelen 255) when absent. */
  statfs?(): Promise<StatFs>;
  /** The value of one extended attribute; ENODATA when it is not set. No xattrs when absent. */
  getxattr?(ino: bigint, name: string): Promise<Buffer>;
  listxattr?(ino: bigint): Promise<readonly string[]>;
  /**
   * Nothing holds `ino` any more: the kernel has forgotten every reply that named it and no open
   * listing contains it, so the server will not ask about it again unless lookup or readdir
   * returns it anew. Until then every ino those two returned stays valid; a filesystem that keeps
   * per-inode state can free it here. (The server does the counting, which a filesystem cannot:
   * only the server knows which listing entries the kernel received with attributes.)
   */
  forgetInode?(ino: bigint): void;
}

export const FILE_TYPE = {
  MASK: 0o170000,
  SOCKET: 0o140000,
  SYMLINK: 0o120000,
  REGULAR: 0o100000,
  BLOCK_DEVICE: 0o060000,
  DIRECTORY: 0o040000,
  CHAR_DEVICE: 0o020000,
  FIFO: 0o010000,
} as const;

/** The kernel's 32-bit dev_t encoding (new_encode_dev), which fuse_attr.rdev carries. */
export function makeDevice(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
