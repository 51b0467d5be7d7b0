// `cvmfs_server ingest` for one tar stream (doc §4.1, sync_union_tarball.cc): members land
// below a base directory; missing parents become placeholder directories; the tar's "./" entry
// gives the base directory its attributes; hard links are cloned into independent entries once
// everything else is in; `.cvmfscatalog` files make their directory a nested catalog; whiteouts
// (.wh.*) are plain files. Unlike the real tool, PAX xattrs (SCHILY.xattr.*) are kept, since this
// project's readers serve them.
import type { CatalogRow } from '../catalog.ts';
import { CvmfsError, describeError } from '../errors.ts';
import { parentPath } from '../path-hash.ts';
import { serializeXattrs } from '../xattr.ts';
import { log } from '../../log.ts';
import { cleanMemberName, LayerEscapeError } from '../../fs/confined-path.ts';
import { readTar } from '../../tar/reader.ts';
import type { TarEntry } from '../../tar/entry.ts';
import { CATALOG_MARKER, type CatalogTree } from './catalog-tree.ts';
import type { ChunkSizes } from './chunker.ts';
import { ContentWriter } from './content-writer.ts';
import type { ObjectStore } from './object-store.ts';
import { directoryRow, fileRow, isDirectoryRow, specialRow, symlinkRow, type EntryAttributes } from './rows.ts';
import type { ChunkEntry } from './writable-catalog.ts';

/** (uid_t)-1: what the real ingest gives placeholder directories when it keeps the tar's owners. */
const UNKNOWN_ID = 4294967295;
const XATTR_LIMIT = 255;

export interface Owner {
  uid: number;
  gid: number;
}

export interface EditorOptions {
  /** Owner of every ingested entry; null keeps the tar's uid/gid (`--keep-ownership`). */
  owner: Owner | null;
  /** Owner of the `.cvmfscatalog` markers this publisher adds itself. */
  markerOwner: Owner;
  /** Publish time in seconds: mtime of placeholders and markers. */
  now: number;
}

export interface IngestOptions {
  /** Repository path the tar is extracted below ("" = the root). */
  baseDir: string;
  /** Make the base directory a nested catalog (`--catalog`). */
  createCatalog: boolean;
  /** Owner of every ingested entry; null keeps the tar's uid/gid. */
  owner: Owner | null;
  /** Null stores every file whole. */
  chunking: ChunkSizes | null;
}

export interface IngestSummary {
  entries: number;
  files: number;
  bytes: number;
}

/** The operations of one publish on paths, with ingest's rules for parents and markers. */
export class TreeEditor {
  readonly tree: CatalogTree;
  readonly #store: ObjectStore;
  readonly #placeholder: EntryAttributes;
  readonly #marker: EntryAttributes;
  /** Directories known to exist, which spares a lookup per tar entry. */
  #knownDirectories = new Set<string>();

  constructor(tree: CatalogTree, store: ObjectStore, options: EditorOptions) {
    this.tree = tree;
    this.#store = store;
    const placeholderOwner = options.owner ?? { uid: UNKNOWN_ID, gid: UNKNOWN_ID };
    this.#placeholder = { permissions: 0o755, ...placeholderOwner, mtime: options.now, xattr: null };
    this.#marker = { permissions: 0o664, ...options.markerOwner, mtime: options.now, xattr: null };
  }

  /** Creates the directory and any missing parents as placeholders (0755, mtime now). */
  async ensureDirectory(path: string): Promise<void> {
    if (this.#knownDirectories.has(path)) return;
    const row = await this.tree.find(path);
    if (row === undefined) {
      await this.ensureDirectory(parentPath(path));
      await this.tree.put(directoryRow(path, this.#placeholder));
    } else if (!isDirectoryRow(row)) {
      throw new CvmfsError('invalid-argument', `${path} is not a directory in the repository, so nothing can be placed below it`);
    }
    this.#knownDirectories.add(path);
  }

  async put(row: CatalogRow, chunks: readonly ChunkEntry[] = []): Promise<void> {
    await this.ensureDirectory(parentPath(row.path));
    if (!isDirectoryRow(row) && this.#knownDirectories.has(row.path)) this.#forgetDirectories(row.path);
    await this.tree.put(row, chunks);
    if (row.name === CATALOG_MARKER && row.path !== `/${CATALOG_MARKER}`) await this.tree.createNestedCatalog(parentPath(row.path));
  }

  async remove(path: string): Promise<boolean> {
    this.#forgetDirectories(path);
    return this.tree.remove(path);
  }

  /** Makes `directory` (created if missing) a nested catalog with its `.cvmfscatalog` marker. */
  async makeNestedCatalog(directory: string): Promise<void> {
    await this.ensureDirectory(directory);
    const hash = await this.#store.put(Buffer.alloc(0), '');
    await this.put(fileRow(`${directory}/${CATALOG_MARKER}`, this.#marker, { size: 0, algorithm: hash.algorithm, chunked: false, hash }));
  }

  #forgetDirectories(path: string): void {
    this.#knownDirectories = new Set([...this.#knownDirectories].filter((known) => known !== path && !known.startsWith(`${path}/`)));
  }
}

/** Ingests one tar stream below `options.baseDir`. Throws, leaving the tree half-changed, on bad input. */
export async function ingestTar(editor: TreeEditor, store: ObjectStore, source: AsyncIterable<Buffer>, options: IngestOptions): Promise<IngestSummary> {
  const { baseDir } = options;
  await editor.ensureDirectory(baseDir);
  if (options.createCatalog && baseDir !== '') await editor.makeNestedCatalog(baseDir);
  const summary: IngestSummary = { entries: 0, files: 0, bytes: 0 };
  const hardlinks: { path: string; target: string }[] = [];
  // Catalog changes are applied strictly in tar order, each after its content is stored.
  let applied: Promise<void> = Promise.resolve();
  let failure: unknown;
  const enqueue = (apply: () => Promise<void>) => {
    applied = applied.then(apply);
    applied.catch((error: unknown) => (failure ??= error));
  };
  const writer = new ContentWriter(store, options.chunking);
  try {
    for await (const entry of readTar(source)) {
      if (failure !== undefined) break;
      summary.entries++;
      const path = memberPath(baseDir, entry.path);
      const attributes = entryAttributes(entry, path, options.owner);
      checkMember(entry, path, baseDir);
      switch (entry.type) {
        case 'directory':
          enqueue(() => editor.put(directoryRow(path, attributes)));
          break;
        case 'file': {
          summary.files++;
          summary.bytes += entry.size;
          const { stored } = await writer.write(entry.body, entry.size);
          enqueue(async () => {
            const result = await stored;
            await editor.put(fileRow(path, attributes, result.content), result.chunks);
          });
          break;
        }
        case 'symlink':
          enqueue(() => editor.put(symlinkRow(path, attributes, entry.linkname)));
          break;
        case 'hardlink':
          hardlinks.push({ path, target: memberPath(baseDir, entry.linkname) });
          enqueue(() => editor.ensureDirectory(parentPath(path)));
          break;
        case 'char':
        case 'block':
          enqueue(() =>
            editor.put(specialRow(path, attributes, entry.type === 'char' ? 'chardev' : 'blockdev', { major: entry.devmajor, minor: entry.devminor })),
          );
          break;
        case 'fifo':
          enqueue(() => editor.put(specialRow(path, attributes, 'fifo')));
          break;
      }
    }
    await applied;
  } catch (error) {
    // Let the changes already queued finish before the caller throws the tree away.
    await applied.catch(() => {});
    throw error;
  } finally {
    await writer.close();
  }
  for (const { path, target } of hardlinks) await cloneHardlink(editor, path, target);
  return summary;
}

/** `base/member`, with the member name cleaned; `..` that leaves the base directory is refused. */
function memberPath(baseDir: string, member: string): string {
  let relative;
  try {
    relative = cleanMemberName(member);
  } catch (error) {
    if (!(error instanceof LayerEscapeError)) throw error;
    throw new CvmfsError('invalid-argument', `${describeError(error)}: it would escape the base directory ${baseDir || '/'}; nothing was published`);
  }
  return relative === '' ? baseDir : `${baseDir}/${relative}`;
}

function checkMember(entry: TarEntry, path: string, baseDir: string): void {
  if (path === baseDir && entry.type !== 'directory') {
    throw new CvmfsError('invalid-argument', `tar entry ${JSON.stringify(entry.path)} is a ${entry.type} at the base directory itself; only a directory can be there`);
  }
  if (path.endsWith(`/${CATALOG_MARKER}`) && entry.type !== 'file') {
    throw new CvmfsError('invalid-argument', `tar entry ${JSON.stringify(entry.path)} is a ${entry.type}; a ${CATALOG_MARKER} must be a regular file`);
  }
}

function entryAttributes(entry: TarEntry, path: string, owner: Owner | null): EntryAttributes {
  return {
    permissions: entry.mode & 0o7777,
    uid: owner?.uid ?? entry.uid,
    gid: owner?.gid ?? entry.gid,
    mtime: Math.floor(entry.mtime),
    xattr: storableXattrs(entry.xattrs, path),
  };
}

/** Catalog entries hold at most 255 attributes of at most 255-byte names and values; others are dropped with a warning. */
function storableXattrs(xattrs: ReadonlyMap<string, Buffer>, path: string): Buffer | null {
  const kept = new Map<string, Buffer>();
  for (const [name, value] of xattrs) {
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes === 0 || nameBytes > XATTR_LIMIT || value.length > XATTR_LIMIT || kept.size === XATTR_LIMIT) {
      log.warn(`${path}: extended attribute ${JSON.stringify(name)} (${value.length} bytes) does not fit a CernVM-FS catalog entry and is left out`);
      continue;
    }
    kept.set(name, value);
  }
  return serializeXattrs(kept);
}

/** A tar hard link becomes an independent copy of its target's entry (WritableCatalogManager::Clone). */
async function cloneHardlink(editor: TreeEditor, path: string, target: string): Promise<void> {
  const source = await editor.tree.find(target);
  if (source === undefined) throw new CvmfsError('invalid-argument', `hard link ${path} points to ${target}, which is not in the repository`);
  if (isDirectoryRow(source)) throw new CvmfsError('invalid-argument', `hard link ${path} points to the directory ${target}`);
  const chunks = await editor.tree.chunks(target);
  await editor.put({ ...source, path, name: path.slice(path.lastIndexOf('/') + 1), hardlinks: 1n }, chunks);
}
