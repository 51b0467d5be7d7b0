// The request dispatcher byte for byte, without a kernel: requests are built here and the
// replies, written to a plain file standing in for /dev/fuse, are parsed back. This reaches what a
// read-only mount never lets through (write opcodes, ERANGE, INIT variants, interrupts).
import assert from 'node:assert/strict';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { errno, FuseError } from '../../src/core/fuse/errors.ts';
import type { Attr, ReadOnlyFilesystem } from '../../src/core/fuse/filesystem.ts';
import type { BackingFileRegistry } from '../../src/core/fuse/backing-files.ts';
import type { SharedLookupTable } from '../../src/core/fuse/device-reader.ts';
import { INIT_FLAG, INIT_FLAG2, OPCODE, OPEN_FLAG } from '../../src/core/fuse/protocol.ts';
import { FuseSession } from '../../src/core/fuse/session.ts';
import { log } from '../../src/core/log.ts';
import { MemoryFilesystem, TabledMemoryFilesystem } from './memory-fs.ts';

interface Reply {
  error: number;
  unique: bigint;
  payload: Buffer;
}

/** A session writing into a file, and helpers to send requests and read what it answered. */
async function harness(t: TestContext, fs: ReadOnlyFilesystem, backingFiles: BackingFileRegistry | null = null) {
  const directory = await mkdtemp(path.join(tmpdir(), 'fuse-session-'));
  const devicePath = path.join(directory, 'device');
  const fd = openSync(devicePath, 'w+');
  t.after(async () => {
    closeSync(fd);
    await rm(directory, { recursive: true });
  });
  const session = new FuseSession(fd, fs, undefined, backingFiles);
  let unique = 100n;
  let consumed = 0;
  return {
    /** The session itself, for what the device reader would do. */
    fuse: session,
    send(opcode: number, nodeId: bigint, body: Buffer = Buffer.alloc(0)): bigint {
      const header = Buffer.alloc(40);
      header.writeUInt32LE(40 + body.length, 0);
      header.writeUInt32LE(opcode, 4);
      header.writeBigUInt64LE(++unique, 8);
      header.writeBigUInt64LE(nodeId, 16);
      session.handle(Buffer.concat([header, body]));
      return unique;
    },
    /** Replies written since the last call, once pending handlers have had a chance to run. */
    async replies(): Promise<Reply[]> {
      for (let i = 0; i < 5; i++) await nextTurn();
      const bytes = readFileSync(devicePath).subarray(consumed);
      consumed += bytes.length;
      const replies: Reply[] = [];
      for (let at = 0; at < bytes.length; ) {
        const length = bytes.readUInt32LE(at);
        assert.ok(length >= 16 && at + length <= bytes.length, 'a whole reply per write');
        replies.push({ error: Math.abs(bytes.readInt32LE(at + 4)), unique: bytes.readBigUInt64LE(at + 8), payload: bytes.subarray(at + 16, at + length) });
        at += length;
      }
      return replies;
    },
    async reply(): Promise<Reply> {
      const replies = await this.replies();
      assert.equal(replies.length, 1, 'one reply');
      return replies[0]!;
    },
  };
}

function u32s(...values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => out.writeUInt32LE(value >>> 0, i * 4));
  return out;
}

function u64s(...values: bigint[]): Buffer {
  const out = Buffer.alloc(values.length * 8);
  values.forEach((value, i) => out.writeBigUInt64LE(value, i * 8));
  return out;
}

function initIn(major: number, minor: number, flags: number, flags2 = 0): Buffer {
  return Buffer.concat([u32s(major, minor, 131_072, flags, flags2), Buffer.alloc(44)]);
}

function name(text: string): Buffer {
  return Buffer.from(`${text}\0`);
}

/** fuse_read_in as READ, READDIR and READDIRPLUS take it. */
function readIn(handle: bigint, offset: number, size: number): Buffer {
  return Buffer.concat([u64s(handle, BigInt(offset)), u32s(size, 0), u64s(0n), u32s(0, 0)]);
}

function xattrIn(size: number, attribute?: string): Buffer {
  return Buffer.concat([u32s(size, 0), attribute === undefined ? Buffer.alloc(0) : name(attribute)]);
}

/** What `fs` must have, without open and release. */
function essentials(fs: MemoryFilesystem): ReadOnlyFilesystem {
  return {
    rootIno: fs.rootIno,
    lookup: fs.lookup.bind(fs),
    getattr: fs.getattr.bind(fs),
    readlink: fs.readlink.bind(fs),
    read: fs.read.bind(fs),
    readdir: fs.readdir.bind(fs),
  };
}

/** `fs` with opendir and releasedir: directories get per-open state and OPENDIR its handle. */
function withOpendir(fs: MemoryFilesystem): ReadOnlyFilesystem {
  return { ...essentials(fs), opendir: async () => 7n, releasedir: async () => {} };
}

function sampleTree(): MemoryFilesystem {
  const fs = new MemoryFilesystem(500n);
  fs.file('file', 'content');
  fs.xattr('file', 'user.a', 'alpha');
  fs.xattr('file', 'user.bin', Buffer.from([0, 255, 0]));
  fs.dir('d');
  for (let i = 0; i < 40; i++) fs.file(`d/entry-${i}`, '');
  return fs;
}

test('INIT takes what we want of what the kernel offers, at the lower minor version', async (t) => {
  const session = await harness(t, sampleTree());
  session.send(OPCODE.INIT, 0n, initIn(7, 45, 0x73fffffb));
  const reply = await session.reply();
  assert.equal(reply.error, 0);
  assert.equal(reply.payload.length, 64);
  const wanted =
    INIT_FLAG.ASYNC_READ | INIT_FLAG.BIG_WRITES | INIT_FLAG.DO_READDIRPLUS | INIT_FLAG.READDIRPLUS_AUTO | INIT_FLAG.PARALLEL_DIROPS | INIT_FLAG.MAX_PAGES | INIT_FLAG.CACHE_SYMLINKS;
  assert.deepEqual(
    {
      major: reply.payload.readUInt32LE(0),
      minor: reply.payload.readUInt32LE(4),
      maxReadahead: reply.payload.readUInt32LE(8),
      flags: reply.payload.readUInt32LE(12),
      maxWrite: reply.payload.readUInt32LE(20),
      timeGran: reply.payload.readUInt32LE(24),
      maxPages: reply.payload.readUInt16LE(28),
    },
    { major: 7, minor: 40, maxReadahead: 131_072, flags: wanted, maxWrite: 128 * 1024, timeGran: 1, maxPages: 256 },
  );

  session.send(OPCODE.INIT, 0n, initIn(7, 31, INIT_FLAG.ASYNC_READ | (1 << 1)));
  const older = await session.reply();
  assert.equal(older.payload.readUInt32LE(4), 31, 'an older kernel gets its own minor back');
  assert.equal(older.payload.readUInt32LE(12), INIT_FLAG.ASYNC_READ, 'nothing the kernel did not offer');

  const errors = t.mock.method(log, 'error', () => {});
  session.send(OPCODE.INIT, 0n, initIn(7, 20, 0));
  assert.equal((await session.reply()).error, errno.EPROTO);
  assert.equal(errors.mock.callCount(), 1);
});

test('LOOKUP: entries with node ids, cached misses, timeouts from the filesystem', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  session.send(OPCODE.LOOKUP, 1n, name('file'));
  const found = (await session.reply()).payload;
  assert.equal(found.length, 128);
  assert.equal(found.readBigUInt64LE(0), fs.attrOf('file').ino, 'node id is the ino');
  assert.equal(found.readBigUInt64LE(16), 86_400n, 'entry timeout');
  assert.equal(found.readBigUInt64LE(40), fs.attrOf('file').ino, 'attr.ino');
  assert.equal(found.readBigUInt64LE(48), 7n, 'attr.size');

  session.send(OPCODE.LOOKUP, 1n, name('nothing'));
  const miss = await session.reply();
  assert.equal(miss.error, 0, 'a miss is an entry with node id 0, which the kernel caches');
  assert.equal(miss.payload.readBigUInt64LE(0), 0n);
  assert.equal(miss.payload.readBigUInt64LE(16), 86_400n);

  const uncached: ReadOnlyFilesystem = {
    cacheTimeouts: { entry: 1.5, attr: 0.25, negative: 0 },
    lookup: (parent, entryName) => fs.lookup(parent === 1n ? fs.rootIno : parent, entryName),
    getattr: (ino) => fs.getattr(ino),
    readlink: (ino) => fs.readlink(ino),
    read: (ino, handle, offset, target) => fs.read(ino, handle, offset, target),
    readdir: (ino) => fs.readdir(ino),
  };
  const other = await harness(t, uncached);
  other.send(OPCODE.LOOKUP, 1n, name('nothing'));
  assert.equal((await other.reply()).error, errno.ENOENT, 'negative caching off');
  other.send(OPCODE.LOOKUP, 1n, name('file'));
  const timed = (await other.reply()).payload;
  assert.deepEqual(
    [timed.readBigUInt64LE(16), timed.readBigUInt64LE(24), timed.readUInt32LE(32), timed.readUInt32LE(36)],
    [1n, 0n, 500_000_000, 250_000_000],
  );
});

test('the kernel root node 1 is the filesystem root ino, and no other inode may use id 1', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  session.send(OPCODE.GETATTR, 1n, Buffer.alloc(16));
  const root = await session.reply();
  assert.equal(root.payload.length, 104);
  assert.equal(root.payload.readBigUInt64LE(16), 500n);
  assert.equal(root.payload.readUInt32LE(16 + 60), 0o040755);

  const clashing: ReadOnlyFilesystem = {
    rootIno: 500n,
    lookup: async (): Promise<Attr> => ({ ...fs.attrOf('file'), ino: 1n }),
    getattr: (ino) => fs.getattr(ino),
    readlink: (ino) => fs.readlink(ino),
    read: (ino, handle, offset, target) => fs.read(ino, handle, offset, target),
    readdir: (ino) => fs.readdir(ino),
  };
  const other = await harness(t, clashing);
  const errors = t.mock.method(log, 'error', () => {});
  other.send(OPCODE.LOOKUP, 1n, name('file'));
  assert.equal((await other.reply()).error, errno.EIO);
  assert.match(String(errors.mock.calls[0]?.arguments[0]), /^fuse: LOOKUP on node 1 failed: ino 1 is reserved/);
});

test('GETXATTR and LISTXATTR: size probes, ERANGE, values, ENODATA', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  const ino = fs.attrOf('file').ino;
  session.send(OPCODE.GETXATTR, ino, xattrIn(0, 'user.bin'));
  const probe = await session.reply();
  assert.deepEqual([probe.error, probe.payload.length, probe.payload.readUInt32LE(0)], [0, 8, 3]);
  session.send(OPCODE.GETXATTR, ino, xattrIn(2, 'user.bin'));
  assert.equal((await session.reply()).error, errno.ERANGE);
  session.send(OPCODE.GETXATTR, ino, xattrIn(3, 'user.bin'));
  assert.deepEqual((await session.reply()).payload, Buffer.from([0, 255, 0]));
  session.send(OPCODE.GETXATTR, ino, xattrIn(100, 'user.none'));
  assert.equal((await session.reply()).error, errno.ENODATA);

  const names = Buffer.from('user.a\0user.bin\0');
  session.send(OPCODE.LISTXATTR, ino, xattrIn(0));
  assert.equal((await session.reply()).payload.readUInt32LE(0), names.length);
  session.send(OPCODE.LISTXATTR, ino, xattrIn(names.length - 1));
  assert.equal((await session.reply()).error, errno.ERANGE);
  session.send(OPCODE.LISTXATTR, ino, xattrIn(names.length));
  assert.deepEqual((await session.reply()).payload, names);
});

test('READDIR pages the listing by offset; READDIRPLUS adds entries with root mapped to node 1', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, withOpendir(fs));
  const dirIno = fs.attrOf('d').ino;
  session.send(OPCODE.OPENDIR, dirIno, u32s(0, 0));
  const opened = (await session.reply()).payload;
  const handle = opened.readBigUInt64LE(0);
  assert.equal(opened.readUInt32LE(8), 0b1010, 'FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR');

  const seen: string[] = [];
  for (let offset = 0, pages = 0; ; pages++) {
    assert.ok(pages < 100);
    session.send(OPCODE.READDIR, dirIno, readIn(handle, offset, 200));
    const page = (await session.reply()).payload;
    assert.ok(page.length <= 200);
    if (page.length === 0) break;
    for (let at = 0; at < page.length; ) {
      const nameLength = page.readUInt32LE(at + 16);
      const entryName = page.toString('utf8', at + 24, at + 24 + nameLength);
      seen.push(entryName);
      assert.equal(page.readUInt32LE(at + 20), entryName.startsWith('.') ? 4 : 8, 'DT_DIR / DT_REG');
      offset = Number(page.readBigUInt64LE(at + 8));
      assert.equal(offset, seen.length, 'off is the position of the next entry');
      at += (24 + nameLength + 7) & ~7;
    }
  }
  assert.deepEqual(seen, ['.', '..', ...Array.from({ length: 40 }, (_, i) => `entry-${i}`)]);
  assert.equal(fs.calls.get('readdir'), 1, 'one listing per open directory');

  session.send(OPCODE.READDIRPLUS, dirIno, readIn(handle, 1, 4096));
  const plus = (await session.reply()).payload;
  assert.equal(plus.readBigUInt64LE(0), 0n, 'no entry for ".." (the kernel links none for it)');
  assert.equal(plus.readBigUInt64LE(128), 500n, 'its dirent has the ino of the root, its parent');
  const second = (128 + 24 + 2 + 7) & ~7;
  assert.equal(plus.readBigUInt64LE(second), fs.attrOf('d/entry-0').ino);
  assert.equal(plus.toString('utf8', second + 128 + 24, second + 128 + 24 + 7), 'entry-0');

  session.send(OPCODE.RELEASEDIR, dirIno, Buffer.concat([u64s(handle), u32s(0, 0), u64s(0n)]));
  assert.equal((await session.reply()).error, 0);
  session.send(OPCODE.READDIR, dirIno, readIn(handle, 0, 4096));
  assert.equal((await session.reply()).error, errno.EBADF, 'released handles are gone');
});

test('a filesystem without opendir answers OPENDIR with ENOSYS and has its listings read by directory, kept until 64 others were read', async (t) => {
  const fs = sampleTree();
  for (let i = 0; i < 64; i++) {
    fs.dir(`many-${i}`);
    fs.file(`many-${i}/only`, '');
  }
  const session = await harness(t, fs);
  const dir = fs.attrOf('d').ino;
  session.send(OPCODE.OPENDIR, dir, u32s(0, 0));
  assert.equal((await session.reply()).error, errno.ENOSYS, 'the kernel stops sending OPENDIR and RELEASEDIR');

  // Without OPENDIR, READDIRs come with handle 0.
  const names = (page: Buffer): string[] => {
    const found: string[] = [];
    for (let at = 0; at < page.length; at += (24 + page.readUInt32LE(at + 16) + 7) & ~7) found.push(page.toString('utf8', at + 24, at + 24 + page.readUInt32LE(at + 16)));
    return found;
  };
  session.send(OPCODE.READDIR, dir, readIn(0n, 0, 200));
  const first = names((await session.reply()).payload);
  session.send(OPCODE.READDIR, dir, readIn(0n, first.length, 4096));
  const rest = names((await session.reply()).payload);
  assert.deepEqual([...first, ...rest], ['.', '..', ...Array.from({ length: 40 }, (_, i) => `entry-${i}`)]);
  session.send(OPCODE.READDIRPLUS, dir, readIn(0n, 2, 4096));
  const plus = (await session.reply()).payload;
  const sent: bigint[] = [];
  for (let at = 0; at < plus.length; at += (128 + 24 + plus.readUInt32LE(at + 128 + 16) + 7) & ~7) sent.push(plus.readBigUInt64LE(at));
  assert.equal(sent[0], fs.attrOf('d/entry-0').ino);
  assert.equal(fs.calls.get('readdir'), 1, 'one listing, kept');

  // Kept listings hold their entries; past 64 others, d's goes, and with it what only it held.
  assert.deepEqual(fs.forgotten, []);
  for (let i = 0; i < 64; i++) session.send(OPCODE.READDIR, fs.attrOf(`many-${i}`).ino, readIn(0n, 0, 4096));
  assert.equal((await session.replies()).length, 64);
  await nextTurn();
  const unsent = Array.from({ length: 40 }, (_, i) => fs.attrOf(`d/entry-${i}`).ino).filter((ino) => !sent.includes(ino));
  assert.ok(unsent.length > 0 && unsent.length < 40);
  assert.deepEqual(fs.forgotten.toSorted(), unsent.toSorted(), 'entries READDIRPLUS sent stay with the kernel');
  session.send(OPCODE.READDIR, dir, readIn(0n, 0, 4096));
  assert.equal(names((await session.reply()).payload).length, 42);
  assert.equal(fs.calls.get('readdir'), 66, 'read again once it was let go');
});

test('writes get EROFS, unknown opcodes ENOSYS', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  const ino = fs.attrOf('file').ino;
  const writes = [4, 6, 8, 9, 10, 11, 12, 13, 16, 21, 24, 35, 43, 45, 47, 51];
  for (const opcode of writes) session.send(opcode, ino, Buffer.alloc(64));
  session.send(OPCODE.OPEN, ino, u32s(constants.O_WRONLY, 0));
  session.send(OPCODE.ACCESS, ino, u32s(2, 0));
  const refused = await session.replies();
  assert.equal(refused.length, writes.length + 2);
  for (const reply of refused) assert.equal(reply.error, errno.EROFS);

  for (const opcode of [39, 40, 46, 50, 52, 999]) session.send(opcode, ino, Buffer.alloc(64));
  const unknown = await session.replies();
  assert.equal(unknown.length, 6);
  for (const reply of unknown) assert.equal(reply.error, errno.ENOSYS);

  session.send(OPCODE.ACCESS, ino, u32s(4 | 1, 0));
  assert.deepEqual(await session.replies().then((replies) => replies.map((reply) => [reply.error, reply.payload.length])), [[0, 0]]);
  // The kernel takes ENOSYS for these as success and stops sending them.
  session.send(OPCODE.FLUSH, ino, Buffer.alloc(24));
  session.send(OPCODE.FSYNC, ino, Buffer.alloc(16));
  session.send(OPCODE.FSYNCDIR, ino, Buffer.alloc(16));
  assert.deepEqual((await session.replies()).map((reply) => reply.error), [errno.ENOSYS, errno.ENOSYS, errno.ENOSYS]);
});

test('an inode is forgotten once no LOOKUP reply, READDIRPLUS entry or open listing holds it', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  const file = fs.attrOf('file').ino;
  session.send(OPCODE.LOOKUP, 1n, name('file'));
  session.send(OPCODE.LOOKUP, 1n, name('file'));
  assert.equal((await session.replies()).length, 2);
  session.send(OPCODE.FORGET, file, u64s(1n));
  session.send(OPCODE.FORGET, 1n, u64s(1n)); // the root is never forgotten
  assert.deepEqual(await session.replies(), [], 'FORGET gets no reply');
  assert.deepEqual(fs.forgotten, [], 'one reference is left');
  session.send(OPCODE.BATCH_FORGET, 0n, Buffer.concat([u32s(2, 0), u64s(file, 1n, 1234n, 1n)]));
  assert.deepEqual(await session.replies(), []);
  assert.deepEqual(fs.forgotten, [file], 'the last reference went; 1234 was never handed out');

  // A listing: the first page goes out with attributes (the kernel holds those entries), the
  // rest without; releasing the directory leaves only what the kernel holds.
  const dir = fs.attrOf('d').ino;
  const entry = (i: number) => fs.attrOf(`d/entry-${i}`).ino;
  const opened = await harness(t, { ...withOpendir(fs), forgetInode: fs.forgetInode.bind(fs) });
  opened.send(OPCODE.OPENDIR, dir, u32s(0, 0));
  const handle = (await opened.reply()).payload.readBigUInt64LE(0);
  opened.send(OPCODE.READDIRPLUS, dir, readIn(handle, 0, 5 * 160)); // ".", "..", entry-0 … entry-2
  opened.send(OPCODE.READDIR, dir, readIn(handle, 5, 4096));
  assert.equal((await opened.replies()).length, 2);
  fs.forgotten.length = 0;
  opened.send(OPCODE.RELEASEDIR, dir, Buffer.concat([u64s(handle), u32s(0, 0), u64s(0n)]));
  await opened.reply();
  await nextTurn();
  assert.deepEqual(fs.forgotten, Array.from({ length: 37 }, (_, i) => entry(i + 3)));
  fs.forgotten.length = 0;
  opened.send(OPCODE.BATCH_FORGET, 0n, Buffer.concat([u32s(3, 0), u64s(entry(0), 1n, entry(1), 1n, entry(2), 1n)]));
  await opened.replies();
  assert.deepEqual(fs.forgotten, [entry(0), entry(1), entry(2)]);

  // A LOOKUP answered too late (interrupted) handed its inode to nobody.
  const stall = Promise.withResolvers<void>();
  fs.beforeLookup = async () => stall.promise;
  fs.forgotten.length = 0;
  const late = session.send(OPCODE.LOOKUP, dir, name('entry-7'));
  session.send(OPCODE.INTERRUPT, 0n, u64s(late));
  assert.deepEqual((await session.replies()).map((r) => r.error), [errno.EINTR]);
  stall.resolve();
  assert.deepEqual(await session.replies(), []);
  assert.deepEqual(fs.forgotten, [entry(7)]);
});

test('a directory\'s lookup table goes to the reader once it has had enough lookups for its size, and holds its inodes until the reader drops it', async (t) => {
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('d');
  for (let i = 0; i < 4; i++) fs.file(`d/f${i}`, '');
  fs.symlink('d/f4', 'f0');
  fs.xattr('d/f2', 'user.x', '1');
  fs.dir('big');
  for (let i = 0; i < 300; i++) fs.file(`big/f${i}`, '');
  const session = await harness(t, fs);
  const shared: (SharedLookupTable & { parent: bigint })[] = [];
  session.fuse.shareLookupTablesWith({ shareLookupTable: (parent, table) => void shared.push({ parent, ...table }) });
  const dir = fs.attrOf('d').ino;
  const file = (i: number) => fs.attrOf(`d/f${i}`).ino;

  // A small directory: its first lookup is enough.
  session.send(OPCODE.LOOKUP, dir, name('f0'));
  await session.replies();
  assert.equal(shared.length, 1);
  const table = shared[0]!;
  assert.equal(table.parent, dir);
  assert.deepEqual(table.names, ['f0', 'f1', 'f2', 'f3', 'f4']);
  assert.equal(table.entries.length, 5 * 128);
  assert.deepEqual([...table.withoutXattrs], [1, 1, 0, 1, 1], 'f2 has an extended attribute');
  assert.deepEqual(table.symlinks, [null, null, null, null, 'f0'], 'what readlink gives');
  // Listed as readdir lists it: ".", ".." (the root's ino), then the names in the table's order.
  assert.deepEqual([...table.listing!.dots], [dir, 500n]);
  assert.deepEqual([...table.listing!.indexes], [0, 1, 2, 3, 4]);
  // Each entry is the fuse_entry_out lookup would have sent: node id, then the attributes.
  const entries = Buffer.from(table.entries);
  table.names.forEach((_, i) => {
    assert.equal(entries.readBigUInt64LE(i * 128), file(i));
    assert.equal(entries.readBigUInt64LE(i * 128 + 40), file(i), 'attr.ino');
  });

  // The reader answered f3 (the kernel holds it now); f0 was answered here.
  session.fuse.readerEvents.answered([file(3)], []);
  session.send(OPCODE.BATCH_FORGET, 0n, Buffer.concat([u32s(2, 0), u64s(file(0), 1n, file(3), 1n)]));
  await session.replies();
  assert.deepEqual(fs.forgotten, [], 'the table still holds them');
  session.fuse.readerEvents.dropped(dir);
  assert.deepEqual(fs.forgotten.toSorted(), [0, 1, 2, 3, 4].map(file).toSorted(), 'nothing holds them any more');

  // 300 names: not after 1 or 2 lookups (128 names each), but after 4.
  const big = fs.attrOf('big').ino;
  for (let i = 0; i < 3; i++) {
    session.send(OPCODE.LOOKUP, big, name(`f${i}`));
    await session.replies();
  }
  assert.equal(shared.length, 1);
  session.send(OPCODE.LOOKUP, big, name('f3'));
  await session.replies();
  assert.equal(shared.length, 2);
  assert.equal(shared[1]!.names.length, 300);
  assert.equal(fs.calls.get('lookupTable'), 4, 'd once; big after 1, 2 and 4 lookups');
});

test('the reader may answer STATFS only for a filesystem without statfs, and then as the session would', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  session.send(OPCODE.STATFS, 1n);
  assert.deepEqual(Buffer.from(session.fuse.readerOptions.statfs!), (await session.reply()).payload);
  const counted = await harness(t, { ...fs, lookup: fs.lookup.bind(fs), getattr: fs.getattr.bind(fs), readlink: fs.readlink.bind(fs), readdir: fs.readdir.bind(fs), read: fs.read.bind(fs), statfs: async () => ({ blocks: 1, bfree: 0, bavail: 0, files: 1, ffree: 0, bsize: 4096, frsize: 4096, namelen: 255 }) });
  assert.equal(counted.fuse.readerOptions.statfs, null);
});

test('the reader may answer RELEASE only for a filesystem whose opens keep no state', async (t) => {
  const fs = sampleTree();
  assert.equal((await harness(t, fs)).fuse.readerOptions.releaseIsStateless, false, 'release must be called');
  assert.equal((await harness(t, essentials(fs))).fuse.readerOptions.releaseIsStateless, true);
});

test('once 8 subdirectories of a directory with a table are found, the tables of all its other small ones are built ahead', async (t) => {
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('walk');
  for (let i = 0; i < 12; i++) {
    fs.dir(`walk/d${i}`);
    fs.file(`walk/d${i}/f`, '');
  }
  fs.dir('walk/huge');
  for (let i = 0; i < 200; i++) fs.file(`walk/huge/f${i}`, '');
  const session = await harness(t, fs);
  const shared: bigint[] = [];
  session.fuse.shareLookupTablesWith({ shareLookupTable: (parent) => void shared.push(parent) });
  const walk = fs.attrOf('walk').ino;
  const d = (i: number) => fs.attrOf(`walk/d${i}`).ino;
  session.send(OPCODE.LOOKUP, walk, name('d0'));
  await session.replies();
  assert.deepEqual(shared, [walk, d(0)], 'walk, then d0 as found');

  // The reader finds d1 … d7 from walk's table: each gets its table, and no other yet.
  session.fuse.readerEvents.answered([1, 2, 3, 4, 5, 6, 7].map(d), [1, 2, 3, 4, 5, 6, 7].map(d));
  await session.replies();
  assert.deepEqual(shared, [walk, ...Array.from({ length: 8 }, (_, i) => d(i))]);
  session.fuse.readerEvents.answered([d(8)], [d(8)]);
  for (let i = 0; i < 200 && shared.length < 12; i++) await nextTurn();
  for (let i = 0; i < 20; i++) await nextTurn();
  assert.deepEqual(shared.slice(9).toSorted(), [8, 9, 10, 11].map(d).toSorted(), 'd8 as found, d9 … d11 ahead; huge has too many names');
  assert.equal(new Set(shared).size, shared.length, 'each once');
});

test('INTERRUPT answers a running request with EINTR and drops its late answer', async (t) => {
  const fs = sampleTree();
  const stall = Promise.withResolvers<void>();
  fs.beforeLookup = async (entryName) => {
    if (entryName === 'slow') await stall.promise;
  };
  fs.file('slow', 'x');
  const session = await harness(t, fs);
  const slow = session.send(OPCODE.LOOKUP, 1n, name('slow'));
  const quick = session.send(OPCODE.LOOKUP, 1n, name('file'));
  assert.deepEqual((await session.replies()).map((r) => r.unique), [quick]);

  session.send(OPCODE.INTERRUPT, 0n, u64s(slow));
  session.send(OPCODE.INTERRUPT, 0n, u64s(99_999n)); // unknown or finished: ignored
  assert.deepEqual(
    (await session.replies()).map((r) => [r.unique, r.error]),
    [[slow, errno.EINTR]],
  );
  stall.resolve();
  assert.deepEqual(await session.replies(), [], 'no second answer');
});

test('a handle opened for an interrupted OPEN or OPENDIR is released at once', async (t) => {
  const fs = sampleTree();
  const opening = Promise.withResolvers<void>();
  const released: string[] = [];
  const slowOpener: ReadOnlyFilesystem = {
    rootIno: fs.rootIno,
    lookup: (parent, entryName) => fs.lookup(parent, entryName),
    getattr: (ino) => fs.getattr(ino),
    readlink: (ino) => fs.readlink(ino),
    read: (ino, handle, offset, target) => fs.read(ino, handle, offset, target),
    readdir: (ino) => fs.readdir(ino),
    open: async () => {
      await opening.promise;
      return 77n;
    },
    release: async (ino, handle) => void released.push(`file ${ino} ${handle}`),
    opendir: async () => {
      await opening.promise;
      return 88n;
    },
    releasedir: async (ino, handle) => void released.push(`dir ${ino} ${handle}`),
  };
  const session = await harness(t, slowOpener);
  const file = session.send(OPCODE.OPEN, 1234n, u32s(constants.O_RDONLY, 0));
  const dir = session.send(OPCODE.OPENDIR, 500n, u32s(0, 0));
  session.send(OPCODE.INTERRUPT, 0n, u64s(file));
  session.send(OPCODE.INTERRUPT, 0n, u64s(dir));
  assert.deepEqual(
    (await session.replies()).map((r) => [r.unique, r.error]),
    [
      [file, errno.EINTR],
      [dir, errno.EINTR],
    ],
  );
  opening.resolve();
  assert.deepEqual(await session.replies(), []);
  assert.deepEqual(released, ['file 1234 77', 'dir 500 88']);
});

test('OPEN keeps the page cache; READ returns at most the size asked for', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, fs);
  const ino = fs.attrOf('file').ino;
  session.send(OPCODE.OPEN, ino, u32s(constants.O_RDONLY, 0));
  const opened = (await session.reply()).payload;
  const handle = opened.readBigUInt64LE(0);
  assert.equal(handle, ino * 10n, "the filesystem's handle");
  assert.equal(opened.readUInt32LE(8), 0b10, 'FOPEN_KEEP_CACHE');
  session.send(OPCODE.READ, ino, readIn(handle, 2, 3));
  assert.equal((await session.reply()).payload.toString(), 'nte');
  session.send(OPCODE.READ, ino, readIn(handle, 5, 100));
  assert.equal((await session.reply()).payload.toString(), 'nt');
  session.send(OPCODE.RELEASE, ino, Buffer.concat([u64s(handle), u32s(0, 0), u64s(0n)]));
  assert.equal((await session.reply()).error, 0);
  assert.equal(fs.calls.get('release'), 1);
});

test('READ fills buffers the session reuses: one at a time while a read is running, each back once its reply is written', async (t) => {
  const fs = sampleTree();
  fs.file('other', 'other bytes');
  const targets: Buffer[] = [];
  const stall = Promise.withResolvers<void>();
  let stalling = false;
  const session = await harness(t, {
    ...fs,
    lookup: fs.lookup.bind(fs),
    getattr: fs.getattr.bind(fs),
    readlink: fs.readlink.bind(fs),
    readdir: fs.readdir.bind(fs),
    read: async (ino, _handle, offset, target) => {
      targets.push(target);
      if (stalling) await stall.promise;
      return fs.read(ino, ino * 10n, offset, target);
    },
  });
  const file = fs.attrOf('file').ino;
  const other = fs.attrOf('other').ino;
  session.send(OPCODE.READ, file, readIn(0n, 0, 4096));
  assert.equal((await session.reply()).payload.toString(), 'content');
  session.send(OPCODE.READ, other, readIn(0n, 6, 4096));
  assert.equal((await session.reply()).payload.toString(), 'bytes', 'only what this read filled, not what the buffer held before');
  assert.equal(targets[0]!.buffer, targets[1]!.buffer, 'the second read got the buffer back');
  assert.equal(targets[1]!.length, 4096, 'sized as the kernel asked');

  // Two at once get two buffers; a failed read gives its buffer back too.
  stalling = true;
  session.send(OPCODE.READ, file, readIn(0n, 0, 4));
  session.send(OPCODE.READ, other, readIn(0n, 0, 5));
  await session.replies();
  assert.notEqual(targets[2]!.buffer, targets[3]!.buffer);
  stall.resolve();
  assert.deepEqual((await session.replies()).map((reply) => reply.payload.toString()), ['cont', 'other']);
  stalling = false;
  fs.beforeRead = async () => {
    throw new FuseError(errno.EIO);
  };
  session.send(OPCODE.READ, file, readIn(0n, 0, 4));
  assert.equal((await session.reply()).error, errno.EIO);
  fs.beforeRead = null;
  const used = new Set(targets.map((target) => target.buffer));
  session.send(OPCODE.READ, file, readIn(0n, 1, 3));
  assert.equal((await session.reply()).payload.toString(), 'ont');
  assert.ok(used.has(targets.at(-1)!.buffer), 'no new buffer after the failed read');
});

test('a filesystem without open answers OPEN with ENOSYS, so the kernel stops sending OPEN and RELEASE', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, { ...fs, lookup: fs.lookup.bind(fs), getattr: fs.getattr.bind(fs), readlink: fs.readlink.bind(fs), readdir: fs.readdir.bind(fs), read: (ino, _handle, offset, target) => fs.read(ino, ino * 10n, offset, target) });
  const ino = fs.attrOf('file').ino;
  session.send(OPCODE.OPEN, ino, u32s(constants.O_RDONLY, 0));
  assert.equal((await session.reply()).error, errno.ENOSYS);
  session.send(OPCODE.OPEN, ino, u32s(constants.O_WRONLY, 0));
  assert.equal((await session.reply()).error, errno.EROFS, 'a write open is still refused as such');
  session.send(OPCODE.READ, ino, readIn(0n, 2, 3));
  assert.equal((await session.reply()).payload.toString(), 'nte', 'reads come with handle 0');
});

test('errors a filesystem throws on purpose reach the caller as their errno', async (t) => {
  const fs = sampleTree();
  fs.beforeRead = async () => {
    throw new FuseError(errno.EACCES, 'not for you');
  };
  const session = await harness(t, fs);
  const ino = fs.attrOf('file').ino;
  const errors = t.mock.method(log, 'error', () => {});
  session.send(OPCODE.READ, ino, readIn(ino * 10n, 0, 10));
  assert.equal((await session.reply()).error, errno.EACCES);
  assert.equal(errors.mock.callCount(), 0, 'expected errors are not logged');
});

test('with --debug every request is logged with its outcome and time, and without it none', async (t) => {
  const lines: string[] = [];
  const reporter = { log: (entry: { args: unknown[] }) => void lines.push(entry.args.join(' ')) };
  log.addReporter(reporter);
  const level = log.level;
  t.after(() => {
    log.removeReporter(reporter);
    log.level = level;
  });
  const session = await harness(t, sampleTree());
  session.send(OPCODE.GETATTR, 1n, Buffer.alloc(16));
  await session.reply();
  assert.deepEqual(lines, []);
  log.level = 4;
  session.send(OPCODE.GETATTR, 1n, Buffer.alloc(16));
  session.send(OPCODE.READLINK, 1n);
  await session.replies();
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, /^fuse: GETATTR on node 1: answered in \d+\.\d\d ms$/);
  assert.match(lines[1]!, /^fuse: READLINK on node 1: errno \d+ in \d+\.\d\d ms$/);
});

/** Stands in for the Perl helper: hands out ids from 7 up and records what it was asked. */
function fakeRegistry(refused: ReadonlySet<string> = new Set()) {
  const registry = {
    usable: true,
    opened: [] as string[],
    closed: [] as number[],
    stopped: false,
    nextId: 7,
    async open(file: string): Promise<number> {
      registry.opened.push(file);
      if (refused.has(file)) throw new Error('the kernel refused a backing file (errno 40)');
      return registry.nextId++;
    },
    close(id: number): void {
      registry.closed.push(id);
    },
    stop(): void {
      registry.stopped = true;
    },
  };
  return registry;
}

/** `fs` without open/release, whose files have backing files named after them (see backingOf). */
function withBackingFiles(fs: MemoryFilesystem, backingOf: (ino: bigint) => Promise<string | null>): ReadOnlyFilesystem {
  return { ...essentials(fs), backingFile: backingOf, forgetInode: fs.forgetInode.bind(fs) };
}

/** INIT from a kernel that offers passthrough; its reply. */
async function initWithPassthrough(session: Awaited<ReturnType<typeof harness>>): Promise<Reply> {
  session.send(OPCODE.INIT, 0n, initIn(7, 45, 0x73fffffb | INIT_FLAG.INIT_EXT, INIT_FLAG2.PASSTHROUGH));
  return session.reply();
}

/** fuse_open_out: handle, open flags, backing id. */
function openOut(reply: Reply): [bigint, number, number] {
  return [reply.payload.readBigUInt64LE(0), reply.payload.readUInt32LE(8), reply.payload.readInt32LE(12)];
}

test('passthrough: asked for in INIT when offered, and each file opened through the backing file its inode keeps', async (t) => {
  const fs = sampleTree();
  fs.file('chunky', 'no backing file');
  fs.file('refused', 'registering fails');
  fs.file('unreachable', 'fetching fails');
  const fileIno = fs.attrOf('file').ino;
  const failures = new Map<bigint, number>();
  const registry = fakeRegistry(new Set(['/cache/refused']));
  const session = await harness(
    t,
    withBackingFiles(fs, async (ino) => {
      const name = ['file', 'chunky', 'refused', 'unreachable'].find((entry) => fs.attrOf(entry).ino === ino)!;
      if (name === 'chunky') return null;
      if (name === 'unreachable' && (failures.get(ino) ?? 0) < 1) {
        failures.set(ino, 1);
        throw new FuseError(errno.EIO);
      }
      return `/cache/${name}`;
    }),
    registry,
  );
  const init = (await initWithPassthrough(session)).payload;
  assert.ok(init.readUInt32LE(12) & INIT_FLAG.INIT_EXT, 'flags go on in flags2');
  assert.equal(init.readUInt32LE(32), INIT_FLAG2.PASSTHROUGH);
  assert.equal(init.readUInt32LE(36), 1, 'backing files on a filesystem that stacks on nothing');

  const open = async (entry: string) => {
    session.send(OPCODE.OPEN, fs.attrOf(entry).ino, u32s(constants.O_RDONLY, 0));
    return session.reply();
  };
  assert.deepEqual(openOut(await open('file')), [0n, OPEN_FLAG.PASSTHROUGH, 7]);
  assert.deepEqual(openOut(await open('file')), [0n, OPEN_FLAG.PASSTHROUGH, 7], 'every open of an inode agrees');
  assert.deepEqual(openOut(await open('chunky')), [0n, OPEN_FLAG.KEEP_CACHE, 0], 'no backing file: read through the server');
  assert.deepEqual(openOut(await open('refused')), [0n, OPEN_FLAG.KEEP_CACHE, 0], 'refused: read through the server');
  assert.equal((await open('unreachable')).error, errno.EIO, 'a file that cannot be fetched cannot be opened');
  assert.deepEqual(openOut(await open('unreachable')), [0n, OPEN_FLAG.PASSTHROUGH, 8], 'and the next open tries again');
  assert.deepEqual(registry.opened, ['/cache/file', '/cache/refused', '/cache/unreachable'], 'registered once per inode');

  session.send(OPCODE.LOOKUP, 1n, name('file'));
  await session.reply();
  session.send(OPCODE.FORGET, fileIno, u64s(1n));
  await session.replies();
  assert.deepEqual(registry.closed, [7], 'a forgotten inode lets go of its backing file');
  session.fuse.end();
  assert.ok(registry.stopped);
});

test('passthrough: the reader is given each backing id before its OPEN is answered, and it is closed only once the reader let go', async (t) => {
  const fs = sampleTree();
  const ino = fs.attrOf('file').ino;
  const registry = fakeRegistry();
  const session = await harness(t, withBackingFiles(fs, async () => '/cache/file'), registry);
  const shares: string[] = [];
  session.fuse.shareBackingFilesWith({
    shareBackingFile: (node, id) => void shares.push(`share ${node} ${id}`),
    unshareBackingFile: (node, id) => void shares.push(`unshare ${node} ${id}`),
  });
  await initWithPassthrough(session);
  session.send(OPCODE.LOOKUP, 1n, name('file'));
  await session.reply();
  session.send(OPCODE.OPEN, ino, u32s(constants.O_RDONLY, 0));
  assert.deepEqual(openOut(await session.reply()), [0n, OPEN_FLAG.PASSTHROUGH, 7]);
  assert.deepEqual(shares, [`share ${ino} 7`]);
  // An OPEN that reaches the main thread is one the reader could not answer (it lets go of a node
  // on FORGET): handed over again.
  session.send(OPCODE.OPEN, ino, u32s(constants.O_RDONLY, 0));
  await session.reply();
  assert.deepEqual(shares, [`share ${ino} 7`, `share ${ino} 7`]);

  session.send(OPCODE.FORGET, ino, u64s(1n));
  await session.replies();
  assert.deepEqual(shares.slice(2), [`unshare ${ino} 7`]);
  assert.deepEqual(registry.closed, [], 'the reader may still hand it out');
  session.fuse.readerEvents.unshared(7);
  assert.deepEqual(registry.closed, [7]);
});

test('passthrough: a table has the backing files of its cached files registered ahead, for the reader to answer their first OPENs', async (t) => {
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('d');
  for (const file of ['cached', 'not-cached', 'late', 'empty']) fs.file(`d/${file}`, file === 'empty' ? '' : file);
  fs.symlink('d/link', 'cached');
  fs.dir('d/sub');
  const ino = (file: string) => fs.attrOf(`d/${file}`).ino;
  const asked: string[] = [];
  const late = Promise.withResolvers<void>();
  const backingFile = async (node: bigint, options?: { cachedOnly?: boolean }) => {
    const file = ['cached', 'not-cached', 'late', 'empty'].find((entry) => ino(entry) === node)!;
    asked.push(`${file}${options?.cachedOnly ? ' if cached' : ''}`);
    if (file === 'late') await late.promise;
    return file === 'not-cached' && options?.cachedOnly ? null : `/cache/${file}`;
  };
  const registry = fakeRegistry();
  const session = await harness(t, { ...essentials(fs), lookupTable: fs.lookupTable.bind(fs), backingFile, forgetInode: fs.forgetInode.bind(fs) }, registry);
  const shares: string[] = [];
  session.fuse.shareBackingFilesWith({
    shareBackingFile: (node, id) => void shares.push(`share ${node} ${id}`),
    unshareBackingFile: (node, id) => void shares.push(`unshare ${node} ${id}`),
  });
  session.fuse.shareLookupTablesWith({ shareLookupTable: () => {} });
  await initWithPassthrough(session);

  // Finding d is enough for its table; its non-empty files are asked for, if cached.
  session.send(OPCODE.LOOKUP, 1n, name('d'));
  await session.reply();
  assert.deepEqual(asked.toSorted(), ['cached if cached', 'late if cached', 'not-cached if cached']);
  assert.deepEqual(registry.opened, ['/cache/cached']);
  assert.deepEqual(shares, [`share ${ino('cached')} 7`], 'the reader answers its OPENs');

  // An OPEN that reaches this thread gets the id registered ahead; one of a file not cached fetches it.
  session.send(OPCODE.OPEN, ino('cached'), u32s(constants.O_RDONLY, 0));
  assert.deepEqual(openOut(await session.reply()), [0n, OPEN_FLAG.PASSTHROUGH, 7]);
  session.send(OPCODE.OPEN, ino('not-cached'), u32s(constants.O_RDONLY, 0));
  assert.deepEqual(openOut(await session.reply()), [0n, OPEN_FLAG.PASSTHROUGH, 8]);
  assert.equal(asked.at(-1), 'not-cached');
  assert.deepEqual(registry.opened, ['/cache/cached', '/cache/not-cached']);

  // A registration that completes once the table and the kernel let go of the inode is undone.
  session.fuse.readerEvents.dropped(fs.attrOf('d').ino);
  assert.ok(fs.forgotten.includes(ino('late')));
  assert.deepEqual(shares.slice(-2).toSorted(), [`unshare ${ino('cached')} 7`, `unshare ${ino('not-cached')} 8`], 'nothing holds them: the reader lets go first');
  late.resolve();
  await session.replies();
  assert.equal(registry.opened.at(-1), '/cache/late');
  assert.deepEqual(registry.closed, [9], 'late, at once');
  assert.ok(!shares.some((line) => line.startsWith(`share ${ino('late')}`)));
  session.fuse.readerEvents.unshared(7);
  session.fuse.readerEvents.unshared(8);
  assert.deepEqual(registry.closed, [9, 7, 8]);
});

test('tables built ahead for directories earlier mounts used come with their cached files; directories in use are those looked into', async (t) => {
  const fs = new TabledMemoryFilesystem(500n);
  for (const dir of ['a', 'b', 'c']) {
    fs.dir(dir);
    fs.file(`${dir}/file`, dir);
  }
  const registry = fakeRegistry();
  const session = await harness(t, { ...essentials(fs), lookupTable: fs.lookupTable.bind(fs), backingFile: async (ino) => `/cache/${ino}`, forgetInode: fs.forgetInode.bind(fs) }, registry);
  const shared: bigint[] = [];
  session.fuse.shareLookupTablesWith({ shareLookupTable: (parent) => void shared.push(parent) });
  session.fuse.shareBackingFilesWith({ shareBackingFile: () => {}, unshareBackingFile: () => {} });
  await initWithPassthrough(session);
  const ino = (path: string) => fs.attrOf(path).ino;

  await session.fuse.buildTablesAhead([500n, ino('a'), ino('b')]);
  await session.replies();
  assert.deepEqual(shared, [1n, ino('a'), ino('b')], 'the root by its node id');
  assert.deepEqual(registry.opened.toSorted(), [`/cache/${ino('a/file')}`, `/cache/${ino('b/file')}`]);
  assert.deepEqual(session.fuse.directoriesInUse, [], 'nothing looked into them yet');

  // b is found (by the reader, from the root's table) and c is looked into here: both in use, in that order.
  session.fuse.readerEvents.answered([ino('b')], [ino('b')]);
  session.send(OPCODE.LOOKUP, ino('c'), name('file'));
  await session.replies();
  assert.deepEqual(session.fuse.directoriesInUse, [ino('b'), ino('c')]);
});

test('passthrough: a filesystem with per-open state keeps every OPEN to itself', async (t) => {
  const fs = sampleTree();
  const session = await harness(t, { ...essentials(fs), open: async () => 5n, release: async () => {}, backingFile: async () => '/cache/file' }, fakeRegistry());
  const shares: string[] = [];
  session.fuse.shareBackingFilesWith({ shareBackingFile: (node) => void shares.push(`share ${node}`), unshareBackingFile: () => {} });
  await initWithPassthrough(session);
  session.send(OPCODE.OPEN, fs.attrOf('file').ino, u32s(constants.O_RDONLY, 0));
  assert.deepEqual(openOut(await session.reply()), [5n, OPEN_FLAG.PASSTHROUGH, 7]);
  assert.deepEqual(shares, []);
});

test('passthrough: not asked for when the kernel does not offer it or the helper cannot run; opens then cost nothing', async (t) => {
  for (const [offered, usable] of [[0, true], [INIT_FLAG2.PASSTHROUGH, false]] as const) {
    const fs = sampleTree();
    const registry = fakeRegistry();
    registry.usable = usable;
    const session = await harness(t, withBackingFiles(fs, async () => '/cache/file'), registry);
    session.send(OPCODE.INIT, 0n, initIn(7, 45, 0x73fffffb | INIT_FLAG.INIT_EXT, offered));
    const init = (await session.reply()).payload;
    assert.equal(init.readUInt32LE(12) & INIT_FLAG.INIT_EXT, 0);
    assert.equal(init.readUInt32LE(32), 0);
    session.send(OPCODE.OPEN, fs.attrOf('file').ino, u32s(constants.O_RDONLY, 0));
    assert.equal((await session.reply()).error, errno.ENOSYS, 'the kernel stops sending OPEN');
    assert.deepEqual(registry.opened, []);
  }
});
