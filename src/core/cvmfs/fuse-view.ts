import { createHash } from 'node:crypto';
import { log } from '../log.ts';
import { errno, FuseError } from '../fuse/errors.ts';
import { FILE_TYPE, makeDevice, type Attr, type DirEntry, type LookupTable, type ReadOnlyFilesystem, type TableEntry } from '../fuse/filesystem.ts';
import { FLAGS, type Entry } from './entry.ts';
import { CvmfsError } from './errors.ts';
import type { Repository } from './repository.ts';

// A repository as a read-only FUSE file system. For layers of container images it can also
// show the AUFS whiteouts that ingestion keeps as plain files (`.wh.<name>`, `.wh..wh..opq`)
// the way overlayfs expects them in a lower layer: a 0/0 character device named <name>, and
// `trusted.overlay.opaque=y` on the directory. Stacked as overlay lower dirs, such layers then
// delete and hide exactly what the image's layers delete and hide. The `.cvmfscatalog` markers
// that ingestion adds to make each layer a nested catalog are not part of the image: hidden.

const WHITEOUT_PREFIX = '.wh.';
export const AUFS_META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
export const CATALOG_MARKER = '.cvmfscatalog';
// Directories whose paths tabledPath knows; a walk through a big tree makes tables of many more.
const MAX_TABLED_PATHS = 4096;

export interface FuseViewOptions {
  /** Present directories as image layers for overlay: whiteouts converted, catalog markers hidden. */
  imageLayers: boolean;
}

function errnoOf(error: CvmfsError): number {
  switch (error.code) {
    case 'not-found':
      return errno.ENOENT;
    case 'not-a-directory':
      return errno.ENOTDIR;
    case 'is-a-directory':
      return errno.EISDIR;
    case 'not-a-symlink':
    case 'invalid-argument':
      return errno.EINVAL;
    case 'no-such-xattr':
      return errno.ENODATA;
    case 'unsupported':
      return errno.EOPNOTSUPP;
    default:
      return errno.EIO;
  }
}

/** Whiteouts are not in the repository; their inode numbers derive from their path. */
function syntheticInode(path: string): bigint {
  return createHash('sha256').update(`whiteout:${path}`).digest().readBigUInt64LE() & 0x7fffffffffffffffn;
}

function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export class RepositoryFuseView implements ReadOnlyFilesystem {
  readonly rootIno: bigint;
  private readonly repository: Repository;
  private readonly imageLayers: boolean;
  /** What each inode the kernel holds stands for; the server says when the kernel lets go. */
  private readonly entries = new Map<bigint, Entry>();
  /** The path of each directory a lookup table was made of (the first ones), by ino. */
  private readonly tabled = new Map<bigint, string>();

  private constructor(repository: Repository, root: Entry, options: FuseViewOptions) {
    this.repository = repository;
    this.imageLayers = options.imageLayers;
    this.rootIno = root.inode;
    this.entries.set(root.inode, root);
  }

  static async create(repository: Repository, options: FuseViewOptions): Promise<RepositoryFuseView> {
    return new RepositoryFuseView(repository, await repository.lookup('/'), options);
  }

  /** Runs a repository call, turning its refusals into errnos; damage and outages are logged. */
  private async call<T>(what: string, task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } catch (error) {
      if (!(error instanceof CvmfsError)) throw error;
      const code = errnoOf(error);
      if (code === errno.EIO) log.error(`${this.repository.fqrn}: ${what}: ${error.message}`);
      throw new FuseError(code, error.message);
    }
  }

  private entry(ino: bigint): Entry {
    const entry = this.entries.get(ino);
    if (!entry) throw new FuseError(errno.ESTALE, `unknown inode ${ino}`);
    return entry;
  }

  private remember(entry: Entry): Attr {
    this.entries.set(entry.inode, entry);
    return this.attrOf(entry);
  }

  private attrOf(entry: Entry): Attr {
    return {
      ino: entry.inode,
      mode: entry.mode,
      nlink: entry.nlink,
      uid: entry.uid,
      gid: entry.gid,
      rdev: entry.rdev ? makeDevice(entry.rdev.major, entry.rdev.minor) : 0,
      size: entry.size,
      blocks: Math.ceil(entry.size / 512),
      atime: entry.mtime,
      mtime: entry.mtime,
      ctime: entry.mtime,
      ...(entry.mtimeNs !== null ? { atimeNs: entry.mtimeNs, mtimeNs: entry.mtimeNs, ctimeNs: entry.mtimeNs } : {}),
    };
  }

  /** The overlay whiteout standing for the AUFS marker `marker` (an entry named `.wh.<name>`). */
  private whiteoutFor(marker: Entry, name: string, parentPath: string): Attr {
    const path = childPath(parentPath, name);
    const whiteout: Entry = {
      ...marker,
      path,
      name,
      type: 'chardev',
      mode: FILE_TYPE.CHAR_DEVICE,
      size: 0,
      nlink: 1,
      inode: syntheticInode(path),
      rdev: { major: 0, minor: 0 },
      xattrs: null,
      contentHash: null,
    };
    return this.remember(whiteout);
  }

  async lookup(parent: bigint, name: string): Promise<Attr> {
    const parentPath = this.entry(parent).path;
    if (this.imageLayers && (name.startsWith(WHITEOUT_PREFIX) || name === CATALOG_MARKER)) throw new FuseError(errno.ENOENT);
    const path = childPath(parentPath, name);
    try {
      return this.remember(await this.call(`lookup ${path}`, () => this.repository.lookup(path)));
    } catch (error) {
      if (!this.imageLayers || !(error instanceof FuseError) || error.errno !== errno.ENOENT) throw error;
      const marker = await this.repository.lookup(childPath(parentPath, `${WHITEOUT_PREFIX}${name}`)).catch(() => undefined);
      if (!marker) throw error;
      return this.whiteoutFor(marker, name, parentPath);
    }
  }

  async getattr(ino: bigint): Promise<Attr> {
    return this.attrOf(this.entry(ino));
  }

  async readlink(ino: bigint): Promise<string> {
    const entry = this.entry(ino);
    if (entry.symlink === null) throw new FuseError(errno.EINVAL, `${entry.path} is not a symbolic link`);
    return entry.symlink;
  }

  async read(ino: bigint, _handle: bigint, offset: number, target: Buffer): Promise<number> {
    const entry = this.entry(ino);
    return this.call(`read ${entry.path}`, () => this.repository.readInto(entry, offset, target));
  }

  async backingFile(ino: bigint, options: { cachedOnly?: boolean } = {}): Promise<string | null> {
    const entry = this.entry(ino);
    return this.call(`open ${entry.path}`, () => this.repository.localFile(entry, options));
  }

  async readdir(ino: bigint): Promise<readonly DirEntry[]> {
    const directory = this.entry(ino);
    return this.listing(directory, await this.call(`readdir ${directory.path}`, () => this.repository.readdir(directory.path)));
  }

  /** The listing of `directory` with its (listed) `children`, in their order. */
  private listing(directory: Entry, children: readonly Entry[]): DirEntry[] {
    const listing: DirEntry[] = [
      { name: '.', attr: this.attrOf(directory) },
      { name: '..', attr: this.attrOf(directory) },
    ];
    for (const child of children) {
      if (!this.imageLayers) {
        listing.push({ name: child.name, attr: this.remember(child) });
      } else if (child.name === CATALOG_MARKER) {
        continue;
      } else if (!child.name.startsWith(WHITEOUT_PREFIX)) {
        listing.push({ name: child.name, attr: this.remember(child) });
      } else if (!child.name.startsWith(AUFS_META_PREFIX)) {
        const name = child.name.slice(WHITEOUT_PREFIX.length);
        listing.push({ name, attr: this.whiteoutFor(child, name, directory.path) });
      }
    }
    return listing;
  }

  async lookupTable(parent: bigint, maxNames: number): Promise<LookupTable | null> {
    const directory = this.entry(parent);
    // Counting first: decoding a big directory's entries would cost more than its lookups.
    if ((await this.call(`count ${directory.path}`, () => this.repository.countEntries(directory.path))) > maxNames) return null;
    const children = await this.call(`list ${directory.path}`, () => this.repository.readdir(directory.path, { hidden: true }));
    const entries = new Map<string, TableEntry>();
    const markers: Entry[] = [];
    for (const child of children) {
      if (this.imageLayers && (child.name.startsWith(WHITEOUT_PREFIX) || child.name === CATALOG_MARKER)) markers.push(child);
      else entries.set(child.name, { attr: this.remember(child), xattrs: (child.xattrs?.size ?? 0) > 0 || (await this.isOpaque(child)), ...(child.symlink !== null && { symlink: child.symlink }) });
    }
    // What lookup makes of a name that is missing but has a `.wh.` marker; names lookup refuses
    // outright (markers of markers, of the catalog marker) stay not found.
    for (const marker of markers) {
      const name = marker.name.slice(WHITEOUT_PREFIX.length);
      if (marker.name === CATALOG_MARKER || name.startsWith(WHITEOUT_PREFIX) || name === CATALOG_MARKER || entries.has(name)) continue;
      entries.set(name, { attr: this.whiteoutFor(marker, name, directory.path), xattrs: false });
    }
    if (this.tabled.size < MAX_TABLED_PATHS) this.tabled.set(directory.inode, directory.path);
    // The server checks it against the table: a whiteout may share its name with an entry of the
    // same layer (which the listing shows twice) or with the catalog marker, and lookup finds only one.
    return { entries, listing: this.listing(directory, children.filter((child) => (child.flags & FLAGS.hidden) === 0)) };
  }

  /** The repository path of directory `ino`, if a lookup table was made of it. */
  tabledPath(ino: bigint): string | undefined {
    return this.tabled.get(ino);
  }

  /** The ino of the directory at repository path `path`, for the server (see FuseSession.buildTablesAhead). */
  async directoryIno(path: string): Promise<bigint> {
    const entry = await this.call(`lookup ${path}`, () => this.repository.lookup(path));
    if (entry.type !== 'dir') throw new FuseError(errno.ENOTDIR, `${path} is not a directory`);
    return this.remember(entry).ino;
  }

  private async isOpaque(directory: Entry): Promise<boolean> {
    if (!this.imageLayers || directory.type !== 'dir') return false;
    return this.repository.lookup(childPath(directory.path, OPAQUE_MARKER)).then(() => true, () => false);
  }

  async getxattr(ino: bigint, name: string): Promise<Buffer> {
    const entry = this.entry(ino);
    if (name === OPAQUE_XATTR && (await this.isOpaque(entry))) return Buffer.from('y');
    const value = entry.xattrs?.get(name);
    if (value === undefined) throw new FuseError(errno.ENODATA);
    return value;
  }

  async listxattr(ino: bigint): Promise<readonly string[]> {
    const entry = this.entry(ino);
    const names = [...(entry.xattrs?.keys() ?? [])];
    if (await this.isOpaque(entry)) names.push(OPAQUE_XATTR);
    return names;
  }

  forgetInode(ino: bigint): void {
    // The root stays: the kernel never looks it up again.
    if (ino !== this.rootIno) this.entries.delete(ino);
  }
}
