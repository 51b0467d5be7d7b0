// Byte layouts of requests and replies. All structs are little-endian with fixed offsets
// (include/uapi/linux/fuse.h); variable-length records are padded to 8 bytes.
import type { Attr, DirEntry, StatFs } from './filesystem.ts';
import { INIT_FLAG, MAX_PAGES, MAX_WRITE, PROTOCOL_MAJOR, SIZE } from './protocol.ts';

export interface Request {
  opcode: number;
  unique: bigint;
  /** The node the request is about (the parent directory for LOOKUP). */
  nodeId: bigint;
  /** Everything after fuse_in_header. */
  body: Buffer;
}

export function decodeRequest(bytes: Buffer): Request {
  // fuse_in_header: len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid u32, total_extlen u16
  const length = bytes.readUInt32LE(0);
  return {
    opcode: bytes.readUInt32LE(4),
    unique: bytes.readBigUInt64LE(8),
    nodeId: bytes.readBigUInt64LE(16),
    body: bytes.subarray(SIZE.IN_HEADER, length),
  };
}

/** A NUL-terminated name starting at `offset` of a request body. */
export function decodeName(body: Buffer, offset = 0): string {
  const end = body.indexOf(0, offset);
  return body.toString('utf8', offset, end < 0 ? body.length : end);
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  /** 0 from a kernel without INIT_EXT. */
  flags2: number;
}

export function decodeInitIn(body: Buffer): InitIn {
  const flags = body.readUInt32LE(12);
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadahead: body.readUInt32LE(8),
    flags,
    // fuse_init_in grew flags2 with 7.36; older kernels send 16 bytes.
    flags2: flags & INIT_FLAG.INIT_EXT && body.length >= 20 ? body.readUInt32LE(16) : 0,
  };
}

/** fuse_read_in, which READ, READDIR and READDIRPLUS share. */
export interface ReadIn {
  handle: bigint;
  offset: number;
  size: number;
}

export function decodeReadIn(body: Buffer): ReadIn {
  return { handle: body.readBigUInt64LE(0), offset: Number(body.readBigUInt64LE(8)), size: body.readUInt32LE(16) };
}

/** fuse_open_in.flags: the open(2) flags. */
export function decodeOpenFlags(body: Buffer): number {
  return body.readUInt32LE(0);
}

/** fuse_release_in.fh, also the first field of fuse_flush_in. */
export function decodeHandle(body: Buffer): bigint {
  return body.readBigUInt64LE(0);
}

/** fuse_getxattr_in (also LISTXATTR's argument): the caller's buffer size, then the name. */
export function decodeXattrIn(body: Buffer): { size: number; name: string } {
  return { size: body.readUInt32LE(0), name: decodeName(body, 8) };
}

/** fuse_access_in.mask. */
export function decodeAccessMask(body: Buffer): number {
  return body.readUInt32LE(0);
}

/** fuse_interrupt_in.unique: the request to interrupt. */
export function decodeInterruptedUnique(body: Buffer): bigint {
  return body.readBigUInt64LE(0);
}

/** fuse_forget_in.nlookup. */
export function decodeForgetCount(body: Buffer): bigint {
  return body.readBigUInt64LE(0);
}

export interface Forget {
  nodeId: bigint;
  nlookup: bigint;
}

/** fuse_batch_forget_in: a count, then that many fuse_forget_one records. */
export function decodeBatchForget(body: Buffer): Forget[] {
  const count = body.readUInt32LE(0);
  const forgets: Forget[] = [];
  for (let i = 0, at = 8; i < count && at + SIZE.FORGET_ONE <= body.length; i++, at += SIZE.FORGET_ONE) {
    forgets.push({ nodeId: body.readBigUInt64LE(at), nlookup: body.readBigUInt64LE(at + 8) });
  }
  return forgets;
}

export function encodeOutHeader(unique: bigint, error: number, payloadLength: number): Buffer {
  const header = Buffer.alloc(SIZE.OUT_HEADER);
  header.writeUInt32LE(SIZE.OUT_HEADER + payloadLength, 0);
  header.writeInt32LE(error === 0 ? 0 : -error, 4);
  header.writeBigUInt64LE(unique, 8);
  return header;
}

export interface InitOut {
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  /** Read by the kernel only when flags has INIT_EXT. */
  flags2: number;
  /** How deep backing files may be stacked (0 without passthrough). */
  maxStackDepth: number;
}

export function encodeInitOut(init: InitOut): Buffer {
  const out = Buffer.alloc(SIZE.INIT_OUT);
  out.writeUInt32LE(PROTOCOL_MAJOR, 0);
  out.writeUInt32LE(init.minor, 4);
  out.writeUInt32LE(init.maxReadahead, 8);
  out.writeUInt32LE(init.flags >>> 0, 12);
  out.writeUInt16LE(init.maxBackground, 16);
  out.writeUInt16LE(init.congestionThreshold, 18);
  out.writeUInt32LE(MAX_WRITE, 20);
  out.writeUInt32LE(1, 24); // time_gran: timestamps are exact to the nanosecond
  out.writeUInt16LE(MAX_PAGES, 28);
  out.writeUInt32LE(init.flags2 >>> 0, 32);
  out.writeUInt32LE(init.maxStackDepth, 36);
  return out;
}

/** A timeout in seconds as the (seconds, nanoseconds) pair the kernel takes. */
function splitSeconds(seconds: number): { sec: number; nsec: number } {
  const whole = Math.floor(seconds);
  return { sec: whole, nsec: Math.round((seconds - whole) * 1e9) };
}

/**
 * A safe integer as a little-endian 64-bit field, signed or not alike, without the BigInt that
 * writeBig*Int64LE needs: listings and lookup tables encode several per entry.
 */
function writeInt64(out: Buffer, value: number, at: number): void {
  const high = Math.floor(value / 2 ** 32);
  out.writeUInt32LE(value - high * 2 ** 32, at);
  out.writeInt32LE(high, at + 4);
}

function writeAttr(out: Buffer, at: number, attr: Attr): void {
  out.writeBigUInt64LE(attr.ino, at);
  writeInt64(out, attr.size, at + 8);
  writeInt64(out, attr.blocks, at + 16);
  // The kernel reads the times as signed (time64_t), so dates before 1970 survive.
  writeInt64(out, attr.atime, at + 24);
  writeInt64(out, attr.mtime, at + 32);
  writeInt64(out, attr.ctime, at + 40);
  out.writeUInt32LE(attr.atimeNs ?? 0, at + 48);
  out.writeUInt32LE(attr.mtimeNs ?? 0, at + 52);
  out.writeUInt32LE(attr.ctimeNs ?? 0, at + 56);
  out.writeUInt32LE(attr.mode, at + 60);
  out.writeUInt32LE(attr.nlink, at + 64);
  out.writeUInt32LE(attr.uid >>> 0, at + 68);
  out.writeUInt32LE(attr.gid >>> 0, at + 72);
  out.writeUInt32LE(attr.rdev, at + 76);
  // blksize 0 and flags 0: the kernel uses the superblock's block size.
}

export interface EntryTimeouts {
  entry: number;
  attr: number;
}

/** fuse_entry_out at `at`; nodeId 0 with an entry timeout is a cached "no such name". */
function writeEntryOut(out: Buffer, at: number, nodeId: bigint, attr: Attr | null, timeouts: EntryTimeouts): void {
  const entry = splitSeconds(timeouts.entry);
  const attrValid = splitSeconds(timeouts.attr);
  out.writeBigUInt64LE(nodeId, at);
  // generation (at + 8) stays 0: node ids are never reused for other content within a mount.
  writeInt64(out, entry.sec, at + 16);
  writeInt64(out, attrValid.sec, at + 24);
  out.writeUInt32LE(entry.nsec, at + 32);
  out.writeUInt32LE(attrValid.nsec, at + 36);
  if (attr) writeAttr(out, at + 40, attr);
}

export function encodeEntryOut(nodeId: bigint, attr: Attr | null, timeouts: EntryTimeouts): Buffer {
  const out = Buffer.alloc(SIZE.ENTRY_OUT);
  writeEntryOut(out, 0, nodeId, attr, timeouts);
  return out;
}

/** fuse_entry_out of each entry, one after the other, in a buffer of its own (to transfer). */
export function encodeEntryOuts(entries: readonly { nodeId: bigint; attr: Attr }[], timeouts: EntryTimeouts): Buffer {
  const out = Buffer.alloc(entries.length * SIZE.ENTRY_OUT);
  entries.forEach(({ nodeId, attr }, i) => writeEntryOut(out, i * SIZE.ENTRY_OUT, nodeId, attr, timeouts));
  return out;
}

export function encodeAttrOut(attr: Attr, attrTimeout: number): Buffer {
  const out = Buffer.alloc(SIZE.ATTR_OUT);
  const valid = splitSeconds(attrTimeout);
  writeInt64(out, valid.sec, 0);
  out.writeUInt32LE(valid.nsec, 8);
  writeAttr(out, 16, attr);
  return out;
}

/** fuse_open_out; `backingId` names the backing file of an open with OPEN_FLAG.PASSTHROUGH. */
export function encodeOpenOut(handle: bigint, openFlags: number, backingId = 0): Buffer {
  const out = Buffer.alloc(SIZE.OPEN_OUT);
  out.writeBigUInt64LE(handle, 0);
  out.writeUInt32LE(openFlags, 8);
  out.writeInt32LE(backingId, 12);
  return out;
}

export function encodeStatfsOut(stat: StatFs): Buffer {
  const out = Buffer.alloc(SIZE.STATFS_OUT);
  out.writeBigUInt64LE(BigInt(stat.blocks), 0);
  out.writeBigUInt64LE(BigInt(stat.bfree), 8);
  out.writeBigUInt64LE(BigInt(stat.bavail), 16);
  out.writeBigUInt64LE(BigInt(stat.files), 24);
  out.writeBigUInt64LE(BigInt(stat.ffree), 32);
  out.writeUInt32LE(stat.bsize, 40);
  out.writeUInt32LE(stat.namelen, 44);
  out.writeUInt32LE(stat.frsize, 48);
  return out;
}

/** fuse_getxattr_out: the size a GETXATTR/LISTXATTR value needs, for a caller probing with size 0. */
export function encodeXattrSize(size: number): Buffer {
  const out = Buffer.alloc(SIZE.GETXATTR_OUT);
  out.writeUInt32LE(size, 0);
  return out;
}

function align8(length: number): number {
  return (length + 7) & ~7;
}

export interface DirentPage {
  bytes: Buffer;
  /** Inos of the READDIRPLUS entries the kernel takes a reference on (all but "." and ".."). */
  referenced: bigint[];
}

/**
 * The entries of `listing` from index `start` that fit in `size` bytes, as fuse_dirent records
 * (or fuse_direntplus with `plus`). Each record's `off` is the index of the next entry, which is
 * what the kernel sends back as the offset of the following READDIR.
 */
export function encodeDirents(
  listing: readonly DirEntry[],
  start: number,
  size: number,
  plus: { nodeIdOf: (attr: Attr) => bigint; timeouts: EntryTimeouts } | null,
): DirentPage {
  const prefix = plus ? SIZE.ENTRY_OUT : 0;
  const recordLength = (name: string) => align8(prefix + SIZE.DIRENT_HEADER + Buffer.byteLength(name));
  // Sized to what fits rather than to `size`: the kernel offers up to a megabyte, and fresh
  // pages for it cost more than the listing (milliseconds per READDIR here).
  let length = 0;
  let end = start;
  for (; end < listing.length; end++) {
    const next = length + recordLength(listing[end]!.name);
    if (next > size) break;
    length = next;
  }
  const out = Buffer.alloc(length);
  const referenced: bigint[] = [];
  let used = 0;
  for (let index = start; index < end; index++) {
    const { name, attr } = listing[index]!;
    const nameLength = Buffer.byteLength(name);
    // The kernel links no entry for "." and "..": theirs stays zero (node id 0: nothing to link).
    if (plus && !isDotEntry(name)) {
      writeEntryOut(out, used, plus.nodeIdOf(attr), attr, plus.timeouts);
      referenced.push(attr.ino);
    }
    const at = used + prefix;
    out.writeBigUInt64LE(attr.ino, at);
    out.writeBigUInt64LE(BigInt(index + 1), at + 8);
    out.writeUInt32LE(nameLength, at + 16);
    out.writeUInt32LE((attr.mode >>> 12) & 0xf, at + 20); // DT_* is the S_IFMT nibble
    out.write(name, at + SIZE.DIRENT_HEADER, 'utf8');
    used += recordLength(name);
  }
  return { bytes: out, referenced };
}

/** "." and "..", which the kernel never links from a listing (and so takes no reference on). */
export function isDotEntry(name: string): boolean {
  return name === '.' || name === '..';
}
