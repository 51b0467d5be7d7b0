// The thread that reads requests from /dev/fuse. A read blocks until the kernel has a request, so
// it must not run on libuv's threadpool (each pending fs.read would park one of its four threads
// and stall every other fs, zlib, crypto and dns call in the process). The reader is a worker
// thread looping on a blocking readSync and posting every request, copied into its own
// transferable buffer, to the main thread. One is enough: it hands each request over without
// waiting for its answer, so it takes requests off the device as fast as the kernel queues them,
// and each further thread only cost ~50 ms of start-up (measured: a mount served its first
// listing after ~400 ms with one, ~550 ms with four; reads and lookups were no faster with four).
//
// A LOOKUP waits for its answer (a `stat` of 10k paths is 10k of them in a row), and handing it to
// the main thread and back costs more than the answer itself. So the main thread may give the
// reader a directory's lookup table (every name lookup finds there, with its encoded reply): the
// reader then answers lookups in that directory itself, and reports the node ids it handed out,
// before anything else it posts, so that the main thread's reference counts never miss one. A
// directory it hands out is reported at once: a lookup inside it is likely to follow, and the
// main thread may have its table ready by then. Overlay follows each lookup in a lower layer with
// extended attribute queries (is this directory opaque? has this program capabilities?), so a
// table also says which of its entries have none, and the reader answers those queries on them;
// and READLINK of its symlinks, and listings of the directory when the table says what they show.
// It also answers STATFS, which overlay asks of every layer it mounts, when the answer never
// changes; RELEASE, sent on every close of a passthrough file, when opens keep no state; OPEN of a
// file already registered for passthrough, with its backing id; and what the session never
// supports (IOCTL; FLUSH, STATX and OPENDIR, about once each per mount). A fresh mount's first
// requests come one after another as a program starts: each kept off the main thread saves a
// hand-over between threads.
import { MessageChannel, Worker } from 'node:worker_threads';
import { log } from '../log.ts';
import { REQUEST_BUFFER_SIZE } from './protocol.ts';

// A string run with eval:true, because inside the single executable there is no file to start a
// worker from. CommonJS require, since the bundle and eval'd workers are CommonJS. The loop starts
// on the first message, which brings the settings of the session it serves; with its one-time
// listener gone, the thread ends when the loop does.
// Tables and backing ids arrive on their own port, taken synchronously before each request (the
// loop never yields to the event loop). EINTR: a signal; EAGAIN: spurious wakeup; ENOENT: the
// kernel dropped the request it was about to hand over (interrupted). ENODEV: the mount is gone,
// which ends the session. A reply the kernel refuses (ENOENT: the caller was interrupted)
// references nothing. The numbers are the FUSE protocol's: opcodes LOOKUP 1, OPEN 14, STATFS 17,
// RELEASE 18, GETXATTR 22, LISTXATTR 23, IOCTL 39, BATCH_FORGET 42 (FORGET 2); errnos ENOENT 2, ENOSYS 38, ENODATA 61;
// headers of 40 and 16 bytes, entries of 128.
const READER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
const { readSync, writeSync } = require('node:fs');
const { fd, bufferSize, tables } = workerData;
let negativeEntry = null;
let statfs = null;
let releaseIsStateless = false;
let unsupported = new Map();
let maxTableNames = 0;
let debug = false;
const buffer = Buffer.allocUnsafeSlow(bufferSize);
// Grows to the largest reply sent (a listing: as much as the kernel asks for).
let reply = Buffer.alloc(16 + 4096);
// fuse_getxattr_out: a LISTXATTR asking for the size of an empty list.
const emptyListSize = Buffer.alloc(8);
const lookupTables = new Map();
let tableNames = 0;
const xattrFreeNodes = new Set();
// Node id → target, of the symlinks in tables.
const symlinkTargets = new Map();
// Node id → backing id, for passthrough opens answered here.
const backingIds = new Map();
// fuse_open_out of such an open: no handle, FOPEN_PASSTHROUGH (1 << 7), the backing id.
const openReply = Buffer.alloc(16);
openReply.writeUInt32LE(1 << 7, 8);
let answered = [];
let directories = [];
function report() {
  if (answered.length === 0) return;
  parentPort.postMessage({ answered, directories });
  answered = [];
  directories = [];
}
function takeTables() {
  for (let received; (received = receiveMessageOnPort(tables)) !== undefined; ) {
    const { backingFile, unshareBackingFile } = received.message;
    // A backing id comes before the OPEN it was registered for is answered; the main thread
    // closes one only once this thread has acknowledged letting go of it.
    if (backingFile !== undefined) {
      backingIds.set(backingFile.node, backingFile.id);
      continue;
    }
    if (unshareBackingFile !== undefined) {
      if (backingIds.get(unshareBackingFile.node) === unshareBackingFile.id) backingIds.delete(unshareBackingFile.node);
      parentPort.postMessage({ unshared: unshareBackingFile.id });
      continue;
    }
    const { parent, table: { names, entries, withoutXattrs, symlinks, listing } } = received.message;
    const table = { indexes: new Map(), names, entries: Buffer.from(entries.buffer, entries.byteOffset, entries.byteLength), withoutXattrs, symlinks, listing };
    for (let i = 0; i < names.length; i++) {
      table.indexes.set(names[i], i);
      // Whoever handed the node out (the main thread may have, before the table came).
      if (withoutXattrs[i] === 1) xattrFreeNodes.add(table.entries.readBigUInt64LE(i * 128));
      if (symlinks[i] !== null) symlinkTargets.set(table.entries.readBigUInt64LE(i * 128), Buffer.from(symlinks[i]));
    }
    lookupTables.set(parent, table);
    tableNames += names.length;
  }
  for (const [parent, table] of lookupTables) {
    if (tableNames <= maxTableNames) break;
    lookupTables.delete(parent);
    tableNames -= table.indexes.size;
    for (let i = 0; i < table.withoutXattrs.length; i++) {
      if (table.withoutXattrs[i] === 1) xattrFreeNodes.delete(table.entries.readBigUInt64LE(i * 128));
      if (table.symlinks[i] !== null) symlinkTargets.delete(table.entries.readBigUInt64LE(i * 128));
    }
    report();
    parentPort.postMessage({ dropped: parent });
  }
}
function send(error, payload, start = 0, end = payload === null ? 0 : payload.length) {
  if (reply.length < 16 + end - start) reply = Buffer.alloc(16 + end - start);
  if (payload !== null) payload.copy(reply, 16, start, end);
  return sendReply(error, end - start);
}
// The reply whose payload, length bytes, is in place after the header.
function sendReply(error, length) {
  reply.writeUInt32LE(16 + length, 0);
  reply.writeInt32LE(-error, 4);
  buffer.copy(reply, 8, 8, 16);
  try {
    writeSync(fd, reply, 0, 16 + length);
    return true;
  } catch (error) {
    if (error.code !== 'ENOENT' && error.code !== 'ENODEV') parentPort.postMessage('writing a reply failed: ' + error.message);
    return false;
  }
}
function answerLookup(length) {
  const table = lookupTables.get(buffer.readBigUInt64LE(16));
  if (table === undefined) return false;
  const end = buffer.indexOf(0, 40);
  const name = buffer.toString('utf8', 40, end < 0 || end > length ? length : end);
  if (name === '.' || name === '..') return false;
  const index = table.indexes.get(name);
  const sent = index === undefined ? send(negativeEntry === null ? 2 : 0, negativeEntry) : send(0, table.entries, index * 128, index * 128 + 128);
  if (sent && index !== undefined) {
    const nodeId = table.entries.readBigUInt64LE(index * 128);
    answered.push(nodeId);
    // fuse_entry_out.attr.mode: S_IFDIR.
    if ((table.entries.readUInt32LE(index * 128 + 100) & 0o170000) === 0o040000) {
      directories.push(nodeId);
      report();
    }
  }
  if (debug) parentPort.postMessage({ debug: 'LOOKUP ' + JSON.stringify(name) + ' in node ' + buffer.readBigUInt64LE(16) + (index === undefined ? ': not found' : ': found') + ', from its table' });
  return true;
}
// LISTXATTR with fuse_getxattr_in.size 0 asks for the size, which a fuse_getxattr_out of 8 bytes gives.
function answerXattrQuery(opcode) {
  if (!xattrFreeNodes.has(buffer.readBigUInt64LE(16))) return false;
  if (opcode === 22) send(61, null);
  else send(0, buffer.readUInt32LE(40) === 0 ? emptyListSize : null);
  if (debug) parentPort.postMessage({ debug: (opcode === 22 ? 'GETXATTR' : 'LISTXATTR') + ' on node ' + buffer.readBigUInt64LE(16) + ': no extended attributes, from its table' });
  return true;
}
// FORGET (2) and BATCH_FORGET (42): an inode the kernel let go of may come back as a new one,
// whose opens must all agree on one backing file, so its OPENs go to the main thread until it
// hands the backing id over again.
function forgetBackingIds(opcode, length) {
  if (opcode === 2) backingIds.delete(buffer.readBigUInt64LE(16));
  else for (let i = 0, count = buffer.readUInt32LE(40); i < count && 64 + 16 * i <= length; i++) backingIds.delete(buffer.readBigUInt64LE(48 + 16 * i));
}
// READDIR (28) and READDIRPLUS (44) of a directory whose table says what it lists. The
// fuse_read_in offset (at 48) is the index of the entry to start from ("." and ".." are 0 and 1),
// its size (at 56) the most to send. The records are the main thread's (encodeDirents): each
// fuse_dirent's off is the index after it, and with READDIRPLUS it follows the fuse_entry_out of
// its entry (zero for "." and ".."), a reference the kernel takes on that node.
function answerListing(opcode) {
  const table = lookupTables.get(buffer.readBigUInt64LE(16));
  if (table === undefined || table.listing === null) return false;
  const prefix = opcode === 44 ? 128 : 0;
  const size = buffer.readUInt32LE(56);
  if (reply.length < 16 + size) reply = Buffer.alloc(16 + size);
  const nodeIds = [];
  let used = 0;
  const { dots, indexes } = table.listing;
  for (let index = Number(buffer.readBigUInt64LE(48)); index < indexes.length + 2; index++) {
    const entry = index < 2 ? -1 : indexes[index - 2];
    const name = entry < 0 ? (index === 0 ? '.' : '..') : table.names[entry];
    const nameLength = Buffer.byteLength(name);
    const recordLength = (prefix + 24 + nameLength + 7) & ~7;
    if (used + recordLength > size) break;
    const at = 16 + used;
    reply.fill(0, at, at + recordLength);
    if (prefix > 0 && entry >= 0) {
      table.entries.copy(reply, at, entry * 128, entry * 128 + 128);
      nodeIds.push(table.entries.readBigUInt64LE(entry * 128));
    }
    // fuse_entry_out.attr.ino and .mode; DT_* is the S_IFMT nibble (DT_DIR 4).
    reply.writeBigUInt64LE(entry < 0 ? dots[index] : table.entries.readBigUInt64LE(entry * 128 + 40), at + prefix);
    reply.writeBigUInt64LE(BigInt(index + 1), at + prefix + 8);
    reply.writeUInt32LE(nameLength, at + prefix + 16);
    reply.writeUInt32LE(entry < 0 ? 4 : (table.entries.readUInt32LE(entry * 128 + 100) >>> 12) & 15, at + prefix + 20);
    reply.write(name, at + prefix + 24, 'utf8');
    used += recordLength;
  }
  if (sendReply(0, used)) answered.push(...nodeIds);
  if (debug) parentPort.postMessage({ debug: (prefix > 0 ? 'READDIRPLUS' : 'READDIR') + ' on node ' + buffer.readBigUInt64LE(16) + ': ' + used + ' bytes, from its table' });
  return true;
}
function answer(opcode, length) {
  if (opcode === 1) return answerLookup(length);
  if (opcode === 22 || opcode === 23) return answerXattrQuery(opcode);
  if (opcode === 28 || opcode === 44) return answerListing(opcode);
  if (opcode === 5) {
    const target = symlinkTargets.get(buffer.readBigUInt64LE(16));
    if (target === undefined) return false;
    send(0, target);
    if (debug) parentPort.postMessage({ debug: 'READLINK on node ' + buffer.readBigUInt64LE(16) + ': from its table' });
    return true;
  }
  if (unsupported.has(opcode)) {
    send(38, null);
    if (debug) parentPort.postMessage({ debug: unsupported.get(opcode) + ' on node ' + buffer.readBigUInt64LE(16) + ': not supported, answered by the reader' });
    return true;
  }
  // OPEN (14) for reading of a file registered for passthrough; fuse_open_in.flags & O_ACCMODE.
  if (opcode === 14 && (buffer.readUInt32LE(40) & 3) === 0) {
    const id = backingIds.get(buffer.readBigUInt64LE(16));
    if (id === undefined) return false;
    openReply.writeInt32LE(id, 12);
    send(0, openReply);
    if (debug) parentPort.postMessage({ debug: 'OPEN on node ' + buffer.readBigUInt64LE(16) + ': passthrough to backing file ' + id + ', answered by the reader' });
    return true;
  }
  // RELEASE (18) of a file, when opens keep no state: closing it needs no answer but a reply.
  if (opcode === 18 && releaseIsStateless) {
    send(0, null);
    if (debug) parentPort.postMessage({ debug: 'RELEASE on node ' + buffer.readBigUInt64LE(16) + ': answered by the reader' });
    return true;
  }
  if (opcode === 17 && statfs !== null) {
    send(0, statfs);
    if (debug) parentPort.postMessage({ debug: 'STATFS on node ' + buffer.readBigUInt64LE(16) + ': answered by the reader' });
    return true;
  }
  return false;
}
parentPort.once('message', (settings) => {
  ({ maxTableNames, debug } = settings);
  // Buffers, as replies are copied from them; the settings arrive as plain bytes.
  const asBuffer = (bytes) => (bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  negativeEntry = asBuffer(settings.negativeEntry);
  statfs = asBuffer(settings.statfs);
  releaseIsStateless = settings.releaseIsStateless;
  unsupported = settings.unsupported;
  for (;;) {
    let length;
    try {
      length = readSync(fd, buffer, 0, bufferSize, null);
    } catch (error) {
      if (error.code === 'EINTR' || error.code === 'EAGAIN' || error.code === 'ENOENT') continue;
      if (error.code !== 'ENODEV') parentPort.postMessage('reading /dev/fuse failed: ' + error.message);
      break;
    }
    takeTables();
    const opcode = buffer.readUInt32LE(4);
    if ((opcode === 2 || opcode === 42) && backingIds.size > 0) forgetBackingIds(opcode, length);
    if (answer(opcode, length)) continue;
    report();
    const request = new Uint8Array(length);
    request.set(buffer.subarray(0, length));
    parentPort.postMessage(request, [request.buffer]);
  }
});
`;

// Names of all tables a reader keeps by default, oldest dropped first: each costs the reader ~200
// bytes and the main thread the entry it stands for, which it keeps while the reader may hand it out.
const DEFAULT_MAX_TABLE_NAMES = 50_000;

/** What the reader tells the main thread. */
export interface DeviceReaderEvents {
  /** A request, as read from the device. */
  request(bytes: Buffer): void;
  /** The kernel now holds these node ids, from lookups the reader answered; some are directories. */
  answered(nodeIds: readonly bigint[], directories: readonly bigint[]): void;
  /** The reader dropped the lookup table of directory `parent` and will not use it again. */
  dropped(parent: bigint): void;
  /** The reader let go of backing id `id` (see unshareBackingFile) and will not hand it out again. */
  unshared(id: number): void;
}

export interface DeviceReader {
  /**
   * Starts reading for a session, once the device is mounted (reading an unmounted one fails).
   * Resolves when the reader has stopped, normally because the mount went away.
   */
  start(events: DeviceReaderEvents, options: DeviceReaderOptions): Promise<void>;
  /** Ends a reader that was never started (the mount failed). */
  cancel(): Promise<void>;
  /**
   * Lets the reader answer from `table` in directory `parent` (a node id). The reader takes it
   * before the next request it reads; `events.dropped` says when it lets go of it.
   */
  shareLookupTable(parent: bigint, table: SharedLookupTable): void;
  /**
   * Lets the reader answer OPENs for reading of node `node` with a passthrough open of backing
   * file `id` (of a filesystem without per-open state). Share it before answering the OPEN it
   * was registered for, so that it reaches the reader before anything that follows that OPEN.
   */
  shareBackingFile(node: bigint, id: number): void;
  /** Takes back what shareBackingFile gave; `events.unshared` says when the id may be closed. */
  unshareBackingFile(node: bigint, id: number): void;
}

/** A directory's lookup table, as the reader answers from it. */
export interface SharedLookupTable {
  /** `names[i]` is found with the fuse_entry_out at `entries[128 i]`; any other name is not found. */
  names: readonly string[];
  entries: Uint8Array;
  /** 1 where that entry has no extended attributes. */
  withoutXattrs: Uint8Array;
  /** What READLINK of each entry gives; null for all but symlinks. */
  symlinks: readonly (string | null)[];
  /**
   * What a listing shows: the inos of its "." and "..", then entries by their index in `names`;
   * null leaves listings to the main thread.
   */
  listing: { dots: BigUint64Array; indexes: Int32Array } | null;
}

export interface DeviceReaderOptions {
  /** The fuse_entry_out of a name not found, or null to answer ENOENT (no negative caching). */
  negativeEntry: Uint8Array | null;
  /** The fuse_statfs_out of every STATFS, or null to leave STATFS to the main thread. */
  statfs: Uint8Array | null;
  /** Whether a file's RELEASE only needs its reply (the filesystem keeps no per-open state). */
  releaseIsStateless: boolean;
  /** Opcodes answered ENOSYS whatever the node, with their names for log lines. */
  unsupported: ReadonlyMap<number, string>;
  /** Post a line for each lookup the reader answers, for --debug. */
  debug: boolean;
  /** Names of all lookup tables kept; default 50,000. */
  maxTableNames?: number;
}

/**
 * Boots the reader of the FUSE device `fd`, waiting for start(). A thread takes tens of
 * milliseconds to boot, which is best spent before the kernel sends INIT: while the device is
 * being mounted, or before it is known what to mount. Until started it does not keep the
 * process alive.
 */
export function prepareDeviceReader(fd: number): DeviceReader {
  const tables = new MessageChannel();
  const worker = new Worker(READER_SOURCE, { eval: true, workerData: { fd, bufferSize: REQUEST_BUFFER_SIZE, tables: tables.port2 }, transferList: [tables.port2] });
  let events: DeviceReaderEvents | null = null;
  worker.on('message', (message: Uint8Array | string | { answered: bigint[]; directories: bigint[] } | { dropped: bigint } | { unshared: number } | { debug: string }) => {
    if (typeof message === 'string') log.error(`fuse: ${message}`);
    else if (events === null) return;
    else if (message instanceof Uint8Array) events.request(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
    else if ('answered' in message) events.answered(message.answered, message.directories);
    else if ('dropped' in message) events.dropped(message.dropped);
    else if ('unshared' in message) events.unshared(message.unshared);
    else log.debug(`fuse: ${message.debug}`);
  });
  worker.on('error', (error) => log.error(`fuse: device reader crashed: ${error.message}`));
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      tables.port1.close();
      resolve();
    }),
  );
  // After the listeners, each of which would take the reference again.
  worker.unref();
  return {
    start(sessionEvents, options) {
      events = sessionEvents;
      worker.ref();
      worker.postMessage({
        negativeEntry: options.negativeEntry,
        statfs: options.statfs,
        releaseIsStateless: options.releaseIsStateless,
        unsupported: options.unsupported,
        maxTableNames: options.maxTableNames ?? DEFAULT_MAX_TABLE_NAMES,
        debug: options.debug,
      });
      return exited;
    },
    async cancel() {
      await worker.terminate();
    },
    shareLookupTable(parent, table) {
      const transferred = [table.entries.buffer, table.withoutXattrs.buffer, ...(table.listing === null ? [] : [table.listing.dots.buffer, table.listing.indexes.buffer])];
      tables.port1.postMessage({ parent, table }, transferred as ArrayBuffer[]);
    },
    shareBackingFile(node, id) {
      tables.port1.postMessage({ backingFile: { node, id } });
    },
    unshareBackingFile(node, id) {
      tables.port1.postMessage({ unshareBackingFile: { node, id } });
    },
  };
}
