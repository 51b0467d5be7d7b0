// Answers the kernel's requests on one FUSE connection. Every request runs as its own async task
// on the main thread, so a slow filesystem call (a CernVM-FS download) delays only the request
// that needs it; each reply is one writev(2) of header and payload, which the kernel takes as one
// message and never blocks on.
import { constants, writevSync } from 'node:fs';
import { LogLevels } from 'consola';
import { log } from '../log.ts';
import {
  decodeAccessMask,
  decodeBatchForget,
  decodeForgetCount,
  decodeHandle,
  decodeInitIn,
  decodeInterruptedUnique,
  decodeName,
  decodeOpenFlags,
  decodeReadIn,
  decodeRequest,
  decodeXattrIn,
  encodeAttrOut,
  encodeDirents,
  encodeEntryOut,
  encodeEntryOuts,
  encodeInitOut,
  encodeOpenOut,
  encodeOutHeader,
  encodeStatfsOut,
  encodeXattrSize,
  isDotEntry,
  type Request,
} from './codec.ts';
import { errno, FuseError } from './errors.ts';
import { DEFAULT_CACHE_TIMEOUTS, FILE_TYPE, type Attr, type CacheTimeouts, type DirEntry, type LookupTable, type ReadOnlyFilesystem, type StatFs } from './filesystem.ts';
import {
  INIT_FLAG,
  INIT_FLAG2,
  MAX_READ,
  OLDEST_SUPPORTED_MINOR,
  OPCODE,
  OPCODE_NAMES,
  OPEN_FLAG,
  PASSTHROUGH_STACK_DEPTH,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  ROOT_NODE_ID,
} from './protocol.ts';
import type { BackingFileRegistry } from './backing-files.ts';
import { ReadBuffers } from './read-buffers.ts';
import { InodeReferences } from './references.ts';
import type { DeviceReader, DeviceReaderEvents, DeviceReaderOptions, SharedLookupTable } from './device-reader.ts';

/** What we ask for in INIT, of what the kernel offers. */
const WANTED_INIT_FLAGS =
  INIT_FLAG.ASYNC_READ | // several READs of one file in flight (readahead)
  INIT_FLAG.PARALLEL_DIROPS | // lookups and readdirs in one directory need not wait for each other
  INIT_FLAG.MAX_PAGES | // READs of up to MAX_PAGES pages
  INIT_FLAG.BIG_WRITES |
  INIT_FLAG.DO_READDIRPLUS | // listings carry attributes, saving a LOOKUP per entry…
  INIT_FLAG.READDIRPLUS_AUTO | // …when the kernel judges they will be used
  INIT_FLAG.CACHE_SYMLINKS; // symlink targets stay in the page cache

// Background requests (readahead, releases) the kernel keeps in flight: well above its default of
// 12, so reads of several files that each wait on a download do not queue behind each other.
const MAX_BACKGROUND = 64;
const CONGESTION_THRESHOLD = 48;

// Requests that would change the tree. The mount is read-only, so the kernel refuses most of
// these itself; any that get through are answered the same way.
const WRITE_OPCODES: ReadonlySet<number> = new Set([
  OPCODE.SETATTR,
  OPCODE.SYMLINK,
  OPCODE.MKNOD,
  OPCODE.MKDIR,
  OPCODE.UNLINK,
  OPCODE.RMDIR,
  OPCODE.RENAME,
  OPCODE.LINK,
  OPCODE.WRITE,
  OPCODE.SETXATTR,
  OPCODE.REMOVEXATTR,
  OPCODE.CREATE,
  OPCODE.FALLOCATE,
  OPCODE.RENAME2,
  OPCODE.COPY_FILE_RANGE,
  OPCODE.TMPFILE,
]);

const EMPTY_STATFS: StatFs = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, frsize: 4096, namelen: 255 };

/** Content never changes, so the kernel may keep pages across opens and cache listings. */
const FILE_OPEN_FLAGS = OPEN_FLAG.KEEP_CACHE;
const DIRECTORY_OPEN_FLAGS = OPEN_FLAG.KEEP_CACHE | OPEN_FLAG.CACHE_DIR;

/** What a handler produced. */
interface Answer {
  payload: readonly Buffer[];
  /** Inos the kernel takes a reference on when it receives the reply. */
  referenced?: readonly bigint[];
  /** The node id of a directory a LOOKUP found. */
  directory?: bigint;
  /** Runs once the reply is written (or dropped): the payload's buffers are free again. */
  written?: () => void;
}

const EMPTY_ANSWER: Answer = { payload: [] };

// A directory's lookup table goes to the device reader once the main thread has answered enough
// lookups in it for its size: checked after 1, 2, 4, 8 … lookups (finding the directory itself
// counts as one, since a lookup inside it usually follows), allowing 128 names per lookup.
// A name costs the main thread ~15 µs to put in a table, while each lookup it answers costs the
// caller two thread hops (0.2 ms to over 1 ms here, against ~45 µs answered from a table), so a table is
// built for about what its directory's lookups have already cost and pays for itself within a
// few more; a big directory gets one only once many of its names have been looked up.
const TABLE_NAMES_PER_LOOKUP = 128;
// Bigger directories keep their lookups on the main thread.
const MAX_TABLE_NAMES = 10_000;
// Directories whose lookups are being counted; the count starts over past this many.
const MAX_COUNTED_DIRECTORIES = 10_000;
// A walk through sibling directories (find, a stat of many paths, an importer scanning packages)
// shows once this many subdirectories of one directory with a table were found: the tables of the
// rest are built ahead of it then, one at a time between requests. Otherwise each directory's
// first lookup would still cross to the main thread and wait for its table (~4 ms here). A
// container's start finds a few directories at the root of each layer (etc, usr, lib…), which
// is no walk: building the tables of all the others then only took CPU time from the start.
const SIBLINGS_BEFORE_PREFETCH = 8;
// Tables up to this size have the backing files of their cached files registered as they go to
// the reader (a bigger directory would cost more registering than its opens would save); the
// directories earlier mounts used get tables up to this size before anything asks.
const MAX_NAMES_REGISTERED_AHEAD = 1024;
// Directories in use a session reports at most (see directoriesInUse).
const MAX_DIRECTORIES_IN_USE = 1024;

/** Where lookup tables go: the device reader, which answers lookups from them. */
export type LookupTableSink = Pick<DeviceReader, 'shareLookupTable'>;

/** Where backing ids go: the device reader, which then answers OPENs of their files. */
export type BackingFileSink = Pick<DeviceReader, 'shareBackingFile' | 'unshareBackingFile'>;

interface OpenDirectory {
  ino: bigint;
  handle: bigint;
  /** Fetched by the first READDIR and paged out from memory after that. */
  listing: Promise<readonly DirEntry[]> | null;
}

// Listings kept for a filesystem without opendir, whose directories the kernel reads without
// opening them here (so there is no RELEASEDIR to say when a listing is done with). The kernel
// caches what it read (FOPEN_CACHE_DIR is its default then), so these serve a listing paged out
// over several READDIRs, and the kernel reading one again once it let its copy go.
const KEPT_LISTINGS = 64;

export class FuseSession {
  readonly #fd: number;
  readonly #fs: ReadOnlyFilesystem;
  readonly #rootIno: bigint;
  readonly #timeouts: CacheTimeouts;
  /** Requests not answered yet; INTERRUPT answers one early, and its late answer is dropped. */
  readonly #pending = new Set<bigint>();
  readonly #directories = new Map<bigint, OpenDirectory>();
  /** Without opendir: listings by directory ino, the least recently read first. */
  readonly #listings = new Map<bigint, OpenDirectory>();
  readonly #references: InodeReferences;
  readonly #readBuffers: ReadBuffers;
  #nextDirectoryHandle = 1n;
  readonly #negativeEntry: Buffer | null;
  #tableSink: LookupTableSink | null = null;
  /** Lookups answered here per directory node id that has no table with the reader. */
  readonly #lookupsWithoutTable = new Map<bigint, number>();
  /** Directories looked into whose tables were built, for directoriesInUse. */
  readonly #directoriesInUse = new Set<bigint>();
  /** Directories whose table is being built. */
  readonly #tablesUnderWay = new Set<bigint>();
  /** Directories with a table at the reader, and the inos that table holds. */
  readonly #tables = new Map<bigint, readonly bigint[]>();
  /** The subdirectories (node ids) each of those tables lists. */
  readonly #tabledSubdirectories = new Map<bigint, readonly bigint[]>();
  /** The directory whose table lists each of those subdirectories. */
  readonly #tabledParents = new Map<bigint, bigint>();
  /** How many of its subdirectories were found, per directory with a table, until the prefetch. */
  readonly #subdirectoriesFound = new Map<bigint, number>();
  #ended = false;
  readonly #initialized = Promise.withResolvers<void>();
  readonly #offeredBackingFiles: BackingFileRegistry | null;
  /** Set once the kernel agreed to passthrough, for a filesystem with backing files. */
  #backingFiles: BackingFileRegistry | null = null;
  /**
   * The backing id of each inode opened so far (0: none; it is read through us). The kernel
   * wants every open of an inode to agree, so an inode keeps its answer until it is forgotten.
   */
  readonly #backingIds = new Map<bigint, Promise<number>>();
  #backingFileSink: BackingFileSink | null = null;
  /** The backing id of each inode whose OPENs the reader answers. */
  readonly #sharedBackingIds = new Map<bigint, number>();

  /**
   * `readBuffers`: for READ replies, as big as the largest READ (MAX_READ). `backingFiles`: the
   * connection's registrar, for passthrough opens of what the filesystem has backing files of.
   */
  constructor(fd: number, fs: ReadOnlyFilesystem, readBuffers = new ReadBuffers(MAX_READ), backingFiles: BackingFileRegistry | null = null) {
    this.#fd = fd;
    this.#fs = fs;
    this.#readBuffers = readBuffers;
    this.#offeredBackingFiles = fs.backingFile ? backingFiles : null;
    this.#rootIno = fs.rootIno ?? ROOT_NODE_ID;
    this.#timeouts = { ...DEFAULT_CACHE_TIMEOUTS, ...fs.cacheTimeouts };
    // Node id 0 with a timeout: the kernel remembers the miss instead of asking again.
    this.#negativeEntry = this.#timeouts.negative > 0 ? encodeEntryOut(0n, null, { entry: this.#timeouts.negative, attr: 0 }) : null;
    this.#references = new InodeReferences(this.#rootIno, (ino) => {
      this.#forgetBackingFile(ino);
      try {
        fs.forgetInode?.(ino);
      } catch (error) {
        log.error(`fuse: forgetting inode ${ino} failed: ${describeError(error)}`);
      }
    });
  }

  /** Resolves once INIT has been answered and the mount can be used. */
  get initialized(): Promise<void> {
    return this.#initialized.promise;
  }

  /** How the device reader should answer from lookup tables, as this session would. */
  get readerOptions(): DeviceReaderOptions {
    return {
      negativeEntry: this.#negativeEntry,
      // Overlay asks each lower layer's STATFS on every mount; without statfs the answer never changes.
      statfs: this.#fs.statfs ? null : encodeStatfsOut(EMPTY_STATFS),
      // A passthrough open sends RELEASE on every close.
      releaseIsStateless: !this.#fs.release,
      // What #answer refuses whatever the node: IOCTL (sent on every copy-up from a lower layer),
      // and FLUSH, STATX and OPENDIR, which the kernel stops sending after their first ENOSYS
      // (several may be on their way by then).
      unsupported: new Map([OPCODE.IOCTL, OPCODE.FLUSH, OPCODE.STATX, ...(this.#fs.opendir ? [] : [OPCODE.OPENDIR])].map((opcode) => [opcode, OPCODE_NAMES.get(opcode)!])),
      debug: log.level >= LogLevels.debug,
    };
  }

  /** What the device reader reports, for prepareDeviceReader. */
  get readerEvents(): DeviceReaderEvents {
    return {
      request: (bytes) => this.handle(bytes),
      answered: (nodeIds, directories) => {
        for (const nodeId of nodeIds) this.#references.add(this.#inoOf(nodeId));
        for (const directory of directories) this.#directoryFound(directory);
      },
      // Out of the reader's hands: the kernel may let go of it.
      unshared: (id) => this.#backingFiles?.close(id),
      dropped: (parent) => {
        const inos = this.#tables.get(parent) ?? [];
        this.#tables.delete(parent);
        for (const subdirectory of this.#tabledSubdirectories.get(parent) ?? []) {
          if (this.#tabledParents.get(subdirectory) === parent) this.#tabledParents.delete(subdirectory);
        }
        this.#tabledSubdirectories.delete(parent);
        this.#subdirectoriesFound.delete(parent);
        for (const ino of inos) this.#references.drop(ino);
      },
    };
  }

  /** Hands lookup tables of busy directories to `sink` from now on (if the filesystem has them). */
  shareLookupTablesWith(sink: LookupTableSink): void {
    this.#tableSink = sink;
  }

  /** Hands the backing ids of files opened for passthrough to `sink` from now on, if opens keep no state. */
  shareBackingFilesWith(sink: BackingFileSink): void {
    if (!this.#fs.open && !this.#fs.release) this.#backingFileSink = sink;
  }

  /** Stops replying: the device is about to be closed. */
  end(): void {
    this.#ended = true;
    this.#offeredBackingFiles?.stop();
  }

  /** Takes one request as read from /dev/fuse. */
  handle(bytes: Buffer): void {
    const request = decodeRequest(bytes);
    try {
      switch (request.opcode) {
        case OPCODE.INIT:
          this.#init(request);
          return;
        // FORGET and BATCH_FORGET are never answered: the kernel does not wait for them.
        case OPCODE.FORGET:
          this.#references.drop(this.#inoOf(request.nodeId), decodeForgetCount(request.body));
          return;
        case OPCODE.BATCH_FORGET:
          for (const { nodeId, nlookup } of decodeBatchForget(request.body)) this.#references.drop(this.#inoOf(nodeId), nlookup);
          return;
        // INTERRUPT itself gets no answer; the request it names gets EINTR if it is still running.
        // One that already finished (or, read by another thread, has not started) is left alone.
        case OPCODE.INTERRUPT: {
          const interrupted = decodeInterruptedUnique(request.body);
          if (this.#pending.delete(interrupted)) this.#send(interrupted, errno.EINTR, []);
          return;
        }
      }
    } catch (error) {
      log.error(`fuse: ${describeRequest(request)} failed: ${describeError(error)}`);
      return;
    }
    this.#pending.add(request.unique);
    // --debug logs every request with its outcome and time; otherwise nothing is measured.
    const started = log.level >= LogLevels.debug ? performance.now() : undefined;
    const finish = (error: number, answer: Answer): void => {
      this.#finish(request.unique, error, answer);
      answer.written?.();
      // After the reply, which building a table would only delay. A directory found is likely to
      // be looked into next, so it counts as a lookup there.
      if (request.opcode === OPCODE.LOOKUP && error === 0) {
        this.#countLookup(request.nodeId);
        if (answer.directory !== undefined) this.#directoryFound(answer.directory);
      }
      if (started !== undefined) log.debug(`fuse: ${describeRequest(request)}: ${error === 0 ? 'answered' : `errno ${error}`} in ${(performance.now() - started).toFixed(2)} ms`);
    };
    this.#answer(request).then(
      (answer) => finish(0, answer),
      (error: unknown) => finish(this.#errnoOf(request, error), EMPTY_ANSWER),
    );
  }

  #init(request: Request): void {
    const offered = decodeInitIn(request.body);
    if (offered.major < PROTOCOL_MAJOR || (offered.major === PROTOCOL_MAJOR && offered.minor < OLDEST_SUPPORTED_MINOR)) {
      log.error(`fuse: kernel protocol ${offered.major}.${offered.minor} is older than 7.${OLDEST_SUPPORTED_MINOR}`);
      this.#send(request.unique, errno.EPROTO, []);
      return;
    }
    const offeredBackingFiles = this.#offeredBackingFiles;
    const passthrough = offeredBackingFiles !== null && offeredBackingFiles.usable && (offered.flags2 & INIT_FLAG2.PASSTHROUGH) !== 0;
    if (passthrough) {
      this.#backingFiles = offeredBackingFiles;
      log.info('fuse: passthrough: the kernel reads files opened here straight from their cached copies');
    } else if (offeredBackingFiles?.usable) log.info('fuse: the kernel offers no passthrough (Linux 6.9+ has it); every read goes through this process');
    const reply = encodeInitOut({
      // A kernel with a newer major version takes our major and asks again.
      minor: offered.major > PROTOCOL_MAJOR ? PROTOCOL_MINOR : Math.min(offered.minor, PROTOCOL_MINOR),
      maxReadahead: offered.maxReadahead,
      flags: offered.flags & (WANTED_INIT_FLAGS | (passthrough ? INIT_FLAG.INIT_EXT : 0)),
      maxBackground: MAX_BACKGROUND,
      congestionThreshold: CONGESTION_THRESHOLD,
      flags2: passthrough ? INIT_FLAG2.PASSTHROUGH : 0,
      maxStackDepth: passthrough ? PASSTHROUGH_STACK_DEPTH : 0,
    });
    this.#send(request.unique, 0, [reply]);
    if (offered.major === PROTOCOL_MAJOR) this.#initialized.resolve();
  }

  async #answer(request: Request): Promise<Answer> {
    const ino = this.#inoOf(request.nodeId);
    const body = request.body;
    switch (request.opcode) {
      case OPCODE.LOOKUP:
        return this.#lookup(ino, decodeName(body));
      case OPCODE.GETATTR:
        return reply(encodeAttrOut(await this.#fs.getattr(ino), this.#timeouts.attr));
      case OPCODE.READLINK:
        return reply(Buffer.from(await this.#fs.readlink(ino)));
      case OPCODE.OPEN: {
        if (decodeOpenFlags(body) & (constants.O_WRONLY | constants.O_RDWR)) throw new FuseError(errno.EROFS);
        // Without per-open state or backing files there is nothing to open: ENOSYS makes the
        // kernel open files without asking (and without RELEASE), keeping their page cache,
        // which saves a round trip on every open of a container's files.
        if (!this.#fs.open && !this.#backingFiles?.usable) throw new FuseError(errno.ENOSYS);
        const backingId = this.#backingFiles === null ? 0 : await this.#backingIdOf(ino);
        const handle = (await this.#fs.open?.(ino)) ?? 0n;
        // Before the reply: the reader must have it before any request that follows this OPEN.
        // Again after a FORGET, which makes the reader let go of it.
        if (backingId > 0 && this.#backingFileSink !== null && this.#backingIds.has(ino)) {
          this.#sharedBackingIds.set(ino, backingId);
          this.#backingFileSink.shareBackingFile(ino, backingId);
        }
        if (!this.#pending.has(request.unique)) {
          // Interrupted while opening: the kernel will never release this handle.
          await this.#fs.release?.(ino, handle);
          return EMPTY_ANSWER;
        }
        return reply(backingId > 0 ? encodeOpenOut(handle, OPEN_FLAG.PASSTHROUGH, backingId) : encodeOpenOut(handle, FILE_OPEN_FLAGS));
      }
      case OPCODE.READ: {
        const { handle, offset, size } = decodeReadIn(body);
        const buffer = this.#readBuffers.take(size);
        const written = () => this.#readBuffers.give(buffer);
        let length;
        try {
          length = await this.#fs.read(ino, handle, offset, buffer.subarray(0, size));
        } catch (error) {
          written();
          throw error;
        }
        return { payload: [buffer.subarray(0, length)], written };
      }
      case OPCODE.RELEASE:
        await this.#fs.release?.(ino, decodeHandle(body));
        return EMPTY_ANSWER;
      case OPCODE.OPENDIR:
        // Like OPEN: ENOSYS makes the kernel read directories without OPENDIR and RELEASEDIR.
        if (!this.#fs.opendir) throw new FuseError(errno.ENOSYS);
        return this.#openDirectory(request.unique, ino, this.#fs.opendir.bind(this.#fs));
      case OPCODE.READDIR:
      case OPCODE.READDIRPLUS:
        return this.#readDirectory(ino, body, request.opcode === OPCODE.READDIRPLUS);
      case OPCODE.RELEASEDIR:
        await this.#releaseDirectory(decodeHandle(body));
        return EMPTY_ANSWER;
      case OPCODE.STATFS:
        return reply(encodeStatfsOut((await this.#fs.statfs?.()) ?? EMPTY_STATFS));
      case OPCODE.GETXATTR: {
        const { size, name } = decodeXattrIn(body);
        if (!this.#fs.getxattr) throw new FuseError(errno.ENODATA);
        return sizedXattrAnswer(await this.#fs.getxattr(ino, name), size);
      }
      case OPCODE.LISTXATTR: {
        const names = (await this.#fs.listxattr?.(ino)) ?? [];
        return sizedXattrAnswer(Buffer.from(names.map((name) => `${name}\0`).join('')), decodeXattrIn(body).size);
      }
      case OPCODE.ACCESS:
        // Permission bits are checked by the kernel (default_permissions); only writing is ruled out here.
        if (decodeAccessMask(body) & constants.W_OK) throw new FuseError(errno.EROFS);
        return EMPTY_ANSWER;
      // DESTROY (sent for block-device mounts only) needs an empty reply.
      case OPCODE.DESTROY:
        return EMPTY_ANSWER;
      default:
        // ENOSYS tells the kernel to stop asking (it remembers that for STATX, LSEEK, POLL …).
        // For FLUSH, FSYNC and FSYNCDIR it also counts as success: nothing is ever dirty here,
        // and every close() of a container's files no longer costs a round trip.
        throw new FuseError(WRITE_OPCODES.has(request.opcode) ? errno.EROFS : errno.ENOSYS);
    }
  }

  /**
   * The backing id for opens of `ino`, registered on its first open; 0 for none. A failure to
   * fetch the file fails the open (and the next open tries again); one to register it means
   * reads through here.
   */
  #backingIdOf(ino: bigint): Promise<number> {
    const backingFiles = this.#backingFiles!;
    let id = this.#backingIds.get(ino);
    if (id === undefined) {
      id = this.#fs.backingFile!(ino).then((path) =>
        path === null
          ? 0
          : backingFiles.open(path).catch((error: unknown) => {
              log.debug(`fuse: node ${ino} is read without passthrough: ${describeError(error)}`);
              return 0;
            }),
      );
      this.#backingIds.set(ino, id);
      const asked = id;
      asked.catch(() => {
        if (this.#backingIds.get(ino) === asked) this.#backingIds.delete(ino);
      });
    }
    return id;
  }

  #forgetBackingFile(ino: bigint): void {
    const id = this.#backingIds.get(ino);
    if (id === undefined) return;
    this.#backingIds.delete(ino);
    const shared = this.#sharedBackingIds.get(ino);
    this.#sharedBackingIds.delete(ino);
    // A shared id is closed once the reader has let go of it (readerEvents.unshared).
    if (shared !== undefined) return this.#backingFileSink!.unshareBackingFile(ino, shared);
    void id.then((registered) => {
      if (registered > 0) this.#backingFiles?.close(registered);
    }, () => undefined);
  }

  async #lookup(parent: bigint, name: string): Promise<Answer> {
    const { entry, attr } = this.#timeouts;
    try {
      const found = await this.#fs.lookup(parent, name);
      const nodeId = this.#nodeIdOf(found);
      return {
        payload: [encodeEntryOut(nodeId, found, { entry, attr })],
        referenced: [found.ino],
        ...((found.mode & FILE_TYPE.MASK) === FILE_TYPE.DIRECTORY && { directory: nodeId }),
      };
    } catch (error) {
      if (error instanceof FuseError && error.errno === errno.ENOENT && this.#negativeEntry !== null) return reply(this.#negativeEntry);
      throw error;
    }
  }

  /** A lookup found `directory`: likely looked into next, and maybe one of siblings walked through. */
  #directoryFound(directory: bigint): void {
    if (this.#tables.has(directory)) this.#noteInUse(directory);
    this.#countLookup(directory);
    const parent = this.#tabledParents.get(directory);
    if (parent === undefined) return;
    const found = (this.#subdirectoriesFound.get(parent) ?? 0) + 1;
    this.#subdirectoriesFound.set(parent, found);
    if (found !== SIBLINGS_BEFORE_PREFETCH) return;
    const subdirectories = this.#tabledSubdirectories.get(parent) ?? [];
    log.debug(`fuse: ${found} subdirectories of node ${parent} found: building the tables of its ${subdirectories.length} ahead`);
    void this.#buildTablesAhead(subdirectories, TABLE_NAMES_PER_LOOKUP, 'walk');
  }

  /**
   * Builds the tables of `directories` (inos) before anything looks into them, one at a time
   * between requests: directories that earlier mounts of the same filesystem looked into, which
   * a program started again looks into again, in the same order. Each with at most 1024 names.
   */
  buildTablesAhead(directories: readonly bigint[]): Promise<void> {
    return this.#buildTablesAhead(
      directories.map((ino) => (ino === this.#rootIno ? ROOT_NODE_ID : ino)),
      MAX_NAMES_REGISTERED_AHEAD,
      'earlier',
    );
  }

  async #buildTablesAhead(directories: readonly bigint[], maxNames: number, why: 'walk' | 'earlier'): Promise<void> {
    for (const directory of directories) {
      // Between requests: what the kernel waits for comes first.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#ended) return;
      if (!this.#tables.has(directory) && !this.#tablesUnderWay.has(directory)) await this.#shareTable(directory, maxNames, why);
    }
  }

  /**
   * The directories (inos) looked into since the mount, whose tables were built (or found
   * built), in that order: what buildTablesAhead of a later mount may be given.
   */
  get directoriesInUse(): readonly bigint[] {
    return [...this.#directoriesInUse].map((nodeId) => this.#inoOf(nodeId));
  }

  #noteInUse(directory: bigint): void {
    if (this.#directoriesInUse.size < MAX_DIRECTORIES_IN_USE) this.#directoriesInUse.add(directory);
  }

  #countLookup(parent: bigint): void {
    if (this.#tableSink === null || !this.#fs.lookupTable || this.#tables.has(parent)) return;
    const count = (this.#lookupsWithoutTable.get(parent) ?? 0) + 1;
    if (this.#lookupsWithoutTable.size >= MAX_COUNTED_DIRECTORIES && count === 1) this.#lookupsWithoutTable.clear();
    this.#lookupsWithoutTable.set(parent, count);
    // Checks at powers of two.
    if ((count & (count - 1)) !== 0 || this.#tablesUnderWay.has(parent)) return;
    void this.#shareTable(parent, Math.min(count * TABLE_NAMES_PER_LOOKUP, MAX_TABLE_NAMES), 'asked');
  }

  /**
   * Builds the table of `parent` if it has at most `maxNames` names, and gives it to the reader:
   * as lookups there `asked`, as part of a `walk` (see SIBLINGS_BEFORE_PREFETCH), or as one that
   * `earlier` mounts used. All but a walk's come with the backing files of their cached files.
   */
  async #shareTable(parent: bigint, maxNames: number, why: 'asked' | 'walk' | 'earlier'): Promise<void> {
    const sink = this.#tableSink;
    if (sink === null || !this.#fs.lookupTable) return;
    this.#tablesUnderWay.add(parent);
    // In the order they were looked into.
    if (why === 'asked') this.#noteInUse(parent);
    const started = performance.now();
    let table: LookupTable | null;
    let entries: { nodeId: bigint; attr: Attr }[];
    try {
      table = await this.#fs.lookupTable(this.#inoOf(parent), maxNames);
      entries = [...(table?.entries.values() ?? [])].map(({ attr }) => ({ nodeId: this.#nodeIdOf(attr), attr }));
    } catch (error) {
      // The lookups themselves report what is wrong.
      table = null;
      entries = [];
      log.debug(`fuse: no lookup table for node ${parent}: ${describeError(error)}`);
    }
    this.#tablesUnderWay.delete(parent);
    // Otherwise lookups there go on being counted, towards the next check.
    if (table === null || this.#ended) return;
    this.#lookupsWithoutTable.delete(parent);
    const inos = entries.map(({ attr }) => attr.ino);
    for (const ino of inos) this.#references.add(ino);
    this.#tables.set(parent, inos);
    const subdirectories = entries.filter(({ attr }) => (attr.mode & FILE_TYPE.MASK) === FILE_TYPE.DIRECTORY).map(({ nodeId }) => nodeId);
    this.#tabledSubdirectories.set(parent, subdirectories);
    for (const subdirectory of subdirectories) this.#tabledParents.set(subdirectory, parent);
    const { entry, attr } = this.#timeouts;
    const names = [...table.entries.keys()];
    sink.shareLookupTable(parent, {
      names,
      entries: encodeEntryOuts(entries, { entry, attr }),
      withoutXattrs: Uint8Array.from(table.entries.values(), ({ xattrs }) => (xattrs ? 0 : 1)),
      symlinks: Array.from(table.entries.values(), ({ symlink }) => symlink ?? null),
      listing: this.#fs.opendir || table.listing === undefined ? null : sharedListing(names, entries, table.listing),
    });
    if (log.level >= LogLevels.debug) log.debug(`fuse: the table of node ${parent} (${names.length} names) went to the reader, built in ${(performance.now() - started).toFixed(2)} ms`);
    if (why !== 'walk' && entries.length <= MAX_NAMES_REGISTERED_AHEAD) {
      for (const { attr } of entries) if ((attr.mode & FILE_TYPE.MASK) === FILE_TYPE.REGULAR && attr.size > 0) void this.#registerAhead(attr.ino);
    }
  }

  /**
   * Registers the backing file of `ino` if it is cached already, and gives it to the reader, so
   * that the file's first OPEN is answered there too: a program that looks into a directory
   * often opens some of its files next, and an OPEN that comes here (and waits for the
   * registrar) costs two hand-overs between threads. Nothing is fetched for it.
   */
  async #registerAhead(ino: bigint): Promise<void> {
    const backingFiles = this.#backingFiles;
    const sink = this.#backingFileSink;
    if (backingFiles === null || !backingFiles.usable || sink === null || this.#backingIds.has(ino)) return;
    let id = 0;
    try {
      const path = await this.#fs.backingFile!(ino, { cachedOnly: true });
      if (path !== null) id = await backingFiles.open(path);
    } catch (error) {
      // Its OPEN will say what is wrong.
      log.debug(`fuse: node ${ino} has no backing file registered ahead: ${describeError(error)}`);
    }
    if (id === 0) return;
    // An OPEN registered it first, or the table and the kernel let go of the inode meanwhile.
    if (this.#backingIds.has(ino) || !this.#references.holds(ino) || this.#ended) return backingFiles.close(id);
    this.#backingIds.set(ino, Promise.resolve(id));
    this.#sharedBackingIds.set(ino, id);
    sink.shareBackingFile(ino, id);
    if (log.level >= LogLevels.debug) log.debug(`fuse: node ${ino} has backing file ${id}, registered ahead`);
  }

  async #openDirectory(unique: bigint, ino: bigint, opendir: NonNullable<ReadOnlyFilesystem['opendir']>): Promise<Answer> {
    const handle = await opendir(ino);
    if (!this.#pending.has(unique)) {
      await this.#fs.releasedir?.(ino, handle);
      return EMPTY_ANSWER;
    }
    const id = this.#nextDirectoryHandle++;
    this.#directories.set(id, { ino, handle, listing: null });
    return reply(encodeOpenOut(id, DIRECTORY_OPEN_FLAGS));
  }

  async #readDirectory(ino: bigint, body: Buffer, plus: boolean): Promise<Answer> {
    const { handle, offset, size } = decodeReadIn(body);
    const directory = this.#fs.opendir ? this.#directories.get(handle) : this.#keptListing(ino);
    if (!directory) throw new FuseError(errno.EBADF);
    directory.listing ??= this.#fs.readdir(directory.ino, directory.handle).then(
      (listing) => {
        // The listing holds its entries until RELEASEDIR, or until it is no longer kept.
        for (const { name, attr } of listing) if (!isDotEntry(name)) this.#references.add(attr.ino);
        return listing;
      },
      (error: unknown) => {
        // Not kept, so that the next READDIR tries again.
        directory.listing = null;
        throw error;
      },
    );
    const listing = await directory.listing;
    const { entry, attr } = this.#timeouts;
    const page = encodeDirents(listing, offset, size, plus ? { nodeIdOf: (a) => this.#nodeIdOf(a), timeouts: { entry, attr } } : null);
    return { payload: [page.bytes], referenced: page.referenced };
  }

  #keptListing(ino: bigint): OpenDirectory {
    const directory = this.#listings.get(ino) ?? { ino, handle: 0n, listing: null };
    this.#listings.delete(ino);
    this.#listings.set(ino, directory);
    for (const [oldest, kept] of this.#listings) {
      if (this.#listings.size <= KEPT_LISTINGS) break;
      this.#listings.delete(oldest);
      void this.#letGo(kept);
    }
    return directory;
  }

  async #releaseDirectory(id: bigint): Promise<void> {
    const directory = this.#directories.get(id);
    if (!directory) return;
    this.#directories.delete(id);
    await this.#letGo(directory);
  }

  /** Drops what a listing holds, once it is no longer used. */
  async #letGo(directory: OpenDirectory): Promise<void> {
    const listing = await directory.listing?.catch(() => null);
    // A READDIR still paging out a kept listing let go of (read under it, not waiting for it)
    // answers within the same turn, taking its own references on what it sends: only then may
    // the listing's go, or an entry would be forgotten while the kernel receives it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const { name, attr } of listing ?? []) if (!isDotEntry(name)) this.#references.drop(attr.ino);
    await this.#fs.releasedir?.(directory.ino, directory.handle);
  }

  #inoOf(nodeId: bigint): bigint {
    return nodeId === ROOT_NODE_ID ? this.#rootIno : nodeId;
  }

  #nodeIdOf(attr: Attr): bigint {
    if (attr.ino === this.#rootIno) return ROOT_NODE_ID;
    // The kernel's ids 0 (no entry) and 1 (the root) cannot name another inode.
    if (attr.ino <= ROOT_NODE_ID) throw new Error(`ino ${attr.ino} is reserved (root ino is ${this.#rootIno})`);
    return attr.ino;
  }

  #errnoOf(request: Request, error: unknown): number {
    if (error instanceof FuseError) return error.errno;
    log.error(`fuse: ${describeRequest(request)} failed: ${describeError(error)}`);
    return errno.EIO;
  }

  #finish(unique: bigint, error: number, answer: Answer): void {
    const referenced = answer.referenced ?? [];
    for (const ino of referenced) this.#references.add(ino);
    // Gone from the set: INTERRUPT already answered it.
    const delivered = this.#pending.delete(unique) && this.#send(unique, error, answer.payload);
    // Handed to nobody after all: that may leave the inodes unused.
    if (!delivered) for (const ino of referenced) this.#references.drop(ino);
  }

  /** Whether the kernel took the reply. */
  #send(unique: bigint, error: number, payload: readonly Buffer[]): boolean {
    if (this.#ended) return false;
    const length = payload.reduce((sum, part) => sum + part.length, 0);
    try {
      writevSync(this.#fd, [encodeOutHeader(unique, error, length), ...payload]);
      return true;
    } catch (writeError) {
      const code = (writeError as NodeJS.ErrnoException).code;
      // ENOENT: the kernel stopped waiting (the caller was killed); ENODEV: the mount is gone.
      if (code !== 'ENOENT' && code !== 'ENODEV') log.error(`fuse: writing a reply failed: ${describeError(writeError)}`);
      return false;
    }
  }
}

/** `listing` as the reader pages it out; null unless it is "." and ".." and then names of the table, as the table has them. */
function sharedListing(names: readonly string[], entries: readonly { attr: Attr }[], listing: readonly DirEntry[]): SharedLookupTable['listing'] {
  const [dot, dotDot] = listing;
  if (dot?.name !== '.' || dotDot?.name !== '..') return null;
  const indexOf = new Map(names.map((name, index) => [name, index]));
  const indexes = new Int32Array(listing.length - 2);
  for (let i = 2; i < listing.length; i++) {
    const { name, attr } = listing[i]!;
    const index = indexOf.get(name);
    if (index === undefined || entries[index]!.attr.ino !== attr.ino) return null;
    indexes[i - 2] = index;
  }
  return { dots: BigUint64Array.of(dot.attr.ino, dotDot.attr.ino), indexes };
}

function reply(payload: Buffer): Answer {
  return { payload: [payload] };
}

/** An xattr value or name list for a caller with a buffer of `size` bytes (0: just asking how big). */
function sizedXattrAnswer(value: Buffer, size: number): Answer {
  if (size === 0) return reply(encodeXattrSize(value.length));
  if (value.length > size) throw new FuseError(errno.ERANGE);
  return reply(value);
}

function describeRequest(request: Request): string {
  return `${OPCODE_NAMES.get(request.opcode) ?? `opcode ${request.opcode}`} on node ${request.nodeId}`;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
