// Numbers of the Linux FUSE kernel protocol (include/uapi/linux/fuse.h) that this server uses.
// We speak minor version 40 (passthrough came with it): every struct below has had its current
// size since 7.23, so a kernel offering anything from 7.23 up works with the same layouts (it
// adapts to our minor), and one that does not offer passthrough is simply not asked for it.

export const PROTOCOL_MAJOR = 7;
export const PROTOCOL_MINOR = 40;
export const OLDEST_SUPPORTED_MINOR = 23;

/** The kernel's node id of the mount's root directory (FUSE_ROOT_ID). */
export const ROOT_NODE_ID = 1n;

export const OPCODE = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  DESTROY: 38,
  IOCTL: 39,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  COPY_FILE_RANGE: 47,
  TMPFILE: 51,
  STATX: 52,
} as const;

/** Opcode → name, for log lines. */
export const OPCODE_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(OPCODE).map(([name, code]) => [code, name]));

// fuse_init_in/out flags.
export const INIT_FLAG = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  /** The flags carry on in flags2 (bit 32 + n of the kernel's 64-bit flags is bit n there). */
  INIT_EXT: 1 << 30,
} as const;

// fuse_init_in/out flags2.
export const INIT_FLAG2 = {
  PASSTHROUGH: 1 << (37 - 32),
} as const;

/**
 * The stacking depth we tell the kernel for passthrough: backing files may live on a filesystem
 * that stacks on nothing (ext4, xfs …). It counts towards the kernel's limit of two, so an
 * overlay can still use the mount as a lower layer.
 */
export const PASSTHROUGH_STACK_DEPTH = 1;

// fuse_open_out.open_flags.
export const OPEN_FLAG = {
  KEEP_CACHE: 1 << 1,
  CACHE_DIR: 1 << 3,
  /** Reads, mmaps and splices go to the backing file named by fuse_open_out.backing_id. */
  PASSTHROUGH: 1 << 7,
} as const;

export const SIZE = {
  IN_HEADER: 40,
  OUT_HEADER: 16,
  ENTRY_OUT: 128,
  ATTR_OUT: 104,
  OPEN_OUT: 16,
  INIT_OUT: 64,
  STATFS_OUT: 80,
  GETXATTR_OUT: 8,
  DIRENT_HEADER: 24,
  WRITE_IN: 40,
  FORGET_ONE: 16,
} as const;

/**
 * Largest WRITE payload we announce. Nothing is ever written to a read-only mount, but the kernel
 * refuses reads from /dev/fuse with a buffer smaller than a header, a fuse_write_in and max_write.
 */
export const MAX_WRITE = 128 * 1024;

/** Read buffer per device reader: room for the largest request the kernel may send us. */
export const REQUEST_BUFFER_SIZE = SIZE.IN_HEADER + SIZE.WRITE_IN + MAX_WRITE + 4096;

/** Pages per READ request (MAX_PAGES): 256 × 4 KiB = 1 MiB, the kernel's default ceiling. */
export const MAX_PAGES = 256;

/** The largest READ the kernel sends us, with 4 KiB pages. */
export const MAX_READ = MAX_PAGES * 4096;
