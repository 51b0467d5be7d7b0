// An in-memory ReadOnlyFilesystem for the FUSE tests: a tree built by path, every entry type,
// xattrs, call counters (to see what reached the server) and a hook to stall lookups.
import { errno, FuseError } from '../../src/core/fuse/errors.ts';
import { FILE_TYPE, makeDevice, type Attr, type DirEntry, type LookupTable, type ReadOnlyFilesystem } from '../../src/core/fuse/filesystem.ts';

interface Node {
  attr: Attr;
  parent: Node | null;
  children: Map<string, Node> | null;
  content: Buffer;
  target: string;
  xattrs: Map<string, Buffer>;
}

export interface Owner {
  uid?: number;
  gid?: number;
  /** Permission bits. */
  perm?: number;
  mtime?: number;
  mtimeNs?: number;
}

const BASE_TIME = 1_600_000_000;

export class MemoryFilesystem implements ReadOnlyFilesystem {
  readonly rootIno: bigint;
  readonly #nodes = new Map<bigint, Node>();
  readonly #root: Node;
  #nextIno: bigint;
  /** How often each method was called. */
  readonly calls = new Map<string, number>();
  /** Inos passed to forgetInode, in order. */
  readonly forgotten: bigint[] = [];
  /** Bytes returned by read(), per file ino. */
  readonly bytesRead = new Map<bigint, number>();
  /** Awaited by lookup before it answers, e.g. to stall or count one name. */
  beforeLookup: ((name: string) => Promise<void>) | null = null;
  /** Awaited by read before it answers, e.g. to make it fail. */
  beforeRead: ((ino: bigint) => Promise<void>) | null = null;

  /** `rootIno` other than 1 checks that the server maps the kernel's root node id. */
  constructor(rootIno = 1n) {
    this.rootIno = rootIno;
    this.#nextIno = rootIno + 1000n;
    this.#root = this.#add(null, '', FILE_TYPE.DIRECTORY, { perm: 0o755 }, rootIno);
  }

  dir(path: string, owner: Owner = {}): void {
    this.#create(path, FILE_TYPE.DIRECTORY, { perm: 0o755, ...owner });
  }

  file(path: string, content: Buffer | string, owner: Owner = {}): void {
    const node = this.#create(path, FILE_TYPE.REGULAR, { perm: 0o644, ...owner });
    node.content = Buffer.from(content);
    node.attr.size = node.content.length;
    node.attr.blocks = Math.ceil(node.content.length / 512);
  }

  symlink(path: string, target: string, owner: Owner = {}): void {
    const node = this.#create(path, FILE_TYPE.SYMLINK, { perm: 0o777, ...owner });
    node.target = target;
    node.attr.size = Buffer.byteLength(target);
  }

  /** A second name for the inode at `existing`. */
  hardlink(path: string, existing: string): void {
    const node = this.#resolve(existing);
    const { parent, name } = this.#parentOf(path);
    parent.children!.set(name, node);
    node.attr.nlink++;
  }

  device(path: string, type: 'char' | 'block', major: number, minor: number, owner: Owner = {}): void {
    const node = this.#create(path, type === 'char' ? FILE_TYPE.CHAR_DEVICE : FILE_TYPE.BLOCK_DEVICE, { perm: 0o666, ...owner });
    node.attr.rdev = makeDevice(major, minor);
  }

  fifo(path: string, owner: Owner = {}): void {
    this.#create(path, FILE_TYPE.FIFO, { perm: 0o644, ...owner });
  }

  xattr(path: string, name: string, value: Buffer | string): void {
    this.#resolve(path).xattrs.set(name, Buffer.from(value));
  }

  /** What a table says of the node's target (symlinks only), without counting a call. */
  symlinkOf(ino: bigint): { symlink?: string } {
    const node = this.#node(ino);
    return (node.attr.mode & FILE_TYPE.MASK) === FILE_TYPE.SYMLINK ? { symlink: node.target } : {};
  }

  /** Without counting a call. */
  hasXattrs(ino: bigint): boolean {
    return this.#node(ino).xattrs.size > 0;
  }

  /** The bytes of file `path`, without counting a call. */
  contentOf(path: string): Buffer {
    return this.#resolve(path).content;
  }

  /** The attributes of `path`, as the mount should show them. */
  attrOf(path: string): Attr {
    return this.#resolve(path).attr;
  }

  async lookup(parent: bigint, name: string): Promise<Attr> {
    this.#count('lookup');
    await this.beforeLookup?.(name);
    const child = this.#directory(parent).children!.get(name);
    if (!child) throw new FuseError(errno.ENOENT);
    return child.attr;
  }

  async getattr(ino: bigint): Promise<Attr> {
    this.#count('getattr');
    return this.#node(ino).attr;
  }

  async readlink(ino: bigint): Promise<string> {
    this.#count('readlink');
    const node = this.#node(ino);
    if ((node.attr.mode & FILE_TYPE.MASK) !== FILE_TYPE.SYMLINK) throw new FuseError(errno.EINVAL);
    return node.target;
  }

  async open(ino: bigint): Promise<bigint> {
    this.#count('open');
    this.#node(ino);
    return ino * 10n; // a handle unlike the ino, so mixing them up would show
  }

  async read(ino: bigint, handle: bigint, offset: number, target: Buffer): Promise<number> {
    this.#count('read');
    if (handle !== ino * 10n) throw new Error(`read of ${ino} with handle ${handle}`);
    await this.beforeRead?.(ino);
    const length = this.#node(ino).content.copy(target, 0, offset, offset + target.length);
    this.bytesRead.set(ino, (this.bytesRead.get(ino) ?? 0) + length);
    return length;
  }

  async release(): Promise<void> {
    this.#count('release');
  }

  async readdir(ino: bigint): Promise<readonly DirEntry[]> {
    this.#count('readdir');
    const node = this.#directory(ino);
    const entries: DirEntry[] = [
      { name: '.', attr: node.attr },
      { name: '..', attr: (node.parent ?? node).attr },
    ];
    for (const [name, child] of node.children!) entries.push({ name, attr: child.attr });
    return entries;
  }

  async getxattr(ino: bigint, name: string): Promise<Buffer> {
    this.#count('getxattr');
    const value = this.#node(ino).xattrs.get(name);
    if (!value) throw new FuseError(errno.ENODATA);
    return value;
  }

  async listxattr(ino: bigint): Promise<readonly string[]> {
    this.#count('listxattr');
    return [...this.#node(ino).xattrs.keys()];
  }

  forgetInode(ino: bigint): void {
    this.forgotten.push(ino);
  }

  #count(method: string): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
  }

  #node(ino: bigint): Node {
    const node = this.#nodes.get(ino);
    if (!node) throw new Error(`no inode ${ino}`); // the kernel only asks for inodes it was given
    return node;
  }

  #directory(ino: bigint): Node {
    const node = this.#node(ino);
    if (!node.children) throw new FuseError(errno.ENOTDIR);
    return node;
  }

  #add(parent: Node | null, name: string, type: number, owner: Owner, ino = this.#nextIno++): Node {
    const mtime = owner.mtime ?? BASE_TIME;
    const node: Node = {
      attr: {
        ino,
        mode: type | (owner.perm ?? 0o644),
        nlink: type === FILE_TYPE.DIRECTORY ? 2 : 1,
        uid: owner.uid ?? 0,
        gid: owner.gid ?? 0,
        rdev: 0,
        size: 0,
        blocks: 0,
        atime: mtime,
        mtime,
        mtimeNs: owner.mtimeNs ?? 0,
        ctime: mtime,
      },
      parent,
      children: type === FILE_TYPE.DIRECTORY ? new Map() : null,
      content: Buffer.alloc(0),
      target: '',
      xattrs: new Map(),
    };
    this.#nodes.set(ino, node);
    if (parent) {
      parent.children!.set(name, node);
      if (type === FILE_TYPE.DIRECTORY) parent.attr.nlink++;
    }
    return node;
  }

  #create(path: string, type: number, owner: Owner): Node {
    const { parent, name } = this.#parentOf(path);
    if (parent.children!.has(name)) throw new Error(`${path} exists`);
    return this.#add(parent, name, type, owner);
  }

  #parentOf(path: string): { parent: Node; name: string } {
    const parts = path.split('/').filter(Boolean);
    const name = parts.pop()!;
    return { parent: this.#resolve(parts.join('/')), name };
  }

  #resolve(path: string): Node {
    let node = this.#root;
    for (const part of path.split('/').filter(Boolean)) {
      const child = node.children?.get(part);
      if (!child) throw new Error(`no ${path} in the test tree`);
      node = child;
    }
    return node;
  }
}

/** The same tree, offering the server each directory's lookup table. */
export class TabledMemoryFilesystem extends MemoryFilesystem {
  async lookupTable(parent: bigint, maxNames: number): Promise<LookupTable | null> {
    this.calls.set('lookupTable', (this.calls.get('lookupTable') ?? 0) + 1);
    const listing = await this.readdir(parent);
    const names = listing.filter(({ name }) => name !== '.' && name !== '..');
    if (names.length > maxNames) return null;
    return { entries: new Map(names.map(({ name, attr }) => [name, { attr, xattrs: this.hasXattrs(attr.ino), ...this.symlinkOf(attr.ino) }])), listing };
  }
}
