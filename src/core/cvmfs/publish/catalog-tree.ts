// All catalogs of one revision as a publish transaction changes them (the role of cvmfs'
// WritableCatalogManager): catalogs are loaded from storage when a path below them is touched,
// nested catalogs are created or merged where `.cvmfscatalog` markers come and go, and the
// changed ones are committed bottom-up, each parent taking its children's new hashes.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CatalogRow } from '../catalog.ts';
import { FLAGS } from '../entry.ts';
import { CvmfsError } from '../errors.ts';
import { formatContentHash, parseContentHash, type ContentHash } from '../hash.ts';
import { parentPath } from '../path-hash.ts';
import { addCounts, totalCounts, type Counts } from './counters.ts';
import type { ObjectStore } from './object-store.ts';
import { isDirectoryRow } from './rows.ts';
import { WritableCatalog, type ChunkEntry, type SealedCatalog } from './writable-catalog.ts';

export const CATALOG_MARKER = '.cvmfscatalog';
const NULL_HASH = '0'.repeat(40);

export interface CommittedRoot {
  hash: ContentHash;
  /** Uncompressed size (manifest B). */
  size: number;
  /** Catalog objects written, root included. */
  catalogs: number;
}

export class CatalogTree {
  readonly #store: ObjectStore;
  readonly #workDir: string;
  /** Loaded catalogs by mountpoint ("" = root). */
  readonly #catalogs = new Map<string, WritableCatalog>();
  readonly #dirty = new Set<string>();
  /** Totals (self + subtree counters) of catalog objects by formatted hash, for the parents' subtree counters. */
  readonly #totals = new Map<string, Counts>();
  #fileCounter = 0;

  private constructor(store: ObjectStore, workDir: string) {
    this.#store = store;
    this.#workDir = workDir;
  }

  /** The tree of the revision whose root catalog is `rootHash`. */
  static async open(store: ObjectStore, workDir: string, rootHash: ContentHash): Promise<CatalogTree> {
    const tree = new CatalogTree(store, workDir);
    await tree.#load('', rootHash);
    return tree;
  }

  /** The catalog whose subtree holds `path`: the deepest one mounted at the path or above it. */
  async catalogFor(path: string): Promise<WritableCatalog> {
    let catalog = this.#catalogs.get('')!;
    for (;;) {
      const mountpoint = nestedMountpointOf(catalog, path);
      if (mountpoint === undefined) return catalog;
      const loaded = this.#catalogs.get(mountpoint);
      const reference = catalog.nested.get(mountpoint)!;
      catalog = loaded ?? (await this.#load(mountpoint, parseContentHash(reference.hash)));
    }
  }

  async find(path: string): Promise<CatalogRow | undefined> {
    return (await this.catalogFor(path)).find(path);
  }

  /**
   * Adds an entry or replaces what was at its path (a directory being replaced goes with its
   * whole subtree). A directory that exists keeps its link count and nested-catalog flags.
   */
  async put(row: CatalogRow, chunks: readonly ChunkEntry[] = []): Promise<void> {
    const existing = await this.find(row.path);
    if (existing !== undefined && isDirectoryRow(existing) && isDirectoryRow(row)) {
      row = { ...row, hardlinks: existing.hardlinks, flags: existing.flags };
    } else if (existing !== undefined && isDirectoryRow(existing)) {
      await this.remove(row.path);
    }
    const catalog = await this.catalogFor(row.path);
    catalog.put(row);
    catalog.setChunks(row.path, chunks);
    this.#markDirty(catalog);
  }

  /** The chunk list of a chunked file. */
  async chunks(path: string): Promise<ChunkEntry[]> {
    return (await this.catalogFor(path)).chunks(path);
  }

  /** Removes an entry and, for a directory, everything below it, nested catalogs included. */
  async remove(path: string): Promise<boolean> {
    if (path === '') throw new CvmfsError('invalid-argument', 'the repository root cannot be removed');
    const catalog = await this.catalogFor(path);
    if (catalog.mountpoint === path) {
      // The whole nested catalog goes: its mountpoint row and reference in the parent.
      const parent = await this.catalogFor(parentPath(path));
      parent.remove(path);
      parent.removeNested(path);
      this.#forgetBelow(path);
      this.#markDirty(parent);
      return true;
    }
    const row = catalog.find(path);
    if (row === undefined) return false;
    if (isDirectoryRow(row)) {
      for (const descendant of [...catalog.descendants(path)]) catalog.remove(descendant.path);
      for (const mountpoint of catalog.nested.keys()) {
        if (mountpoint.startsWith(`${path}/`)) catalog.removeNested(mountpoint);
      }
      this.#forgetBelow(path);
    }
    catalog.remove(path);
    this.#markDirty(catalog);
    if (row.name === CATALOG_MARKER && catalog.mountpoint === parentPath(path) && catalog.mountpoint !== '') {
      await this.mergeNestedCatalog(catalog.mountpoint);
    }
    return true;
  }

  /** Makes the directory at `mountpoint` the root of a new nested catalog, moving its subtree there. */
  async createNestedCatalog(mountpoint: string): Promise<void> {
    const owner = await this.catalogFor(mountpoint);
    if (owner.mountpoint === mountpoint) return;
    const row = owner.find(mountpoint);
    if (row === undefined || !isDirectoryRow(row)) throw new CvmfsError('invalid-argument', `cannot make ${mountpoint} a nested catalog: it is not a directory`);
    const nested = WritableCatalog.create(this.#newFile(), mountpoint, { ...row, flags: (row.flags & ~FLAGS.nestedMountpoint) | FLAGS.nestedRoot });
    this.#catalogs.set(mountpoint, nested);
    moveSubtree(owner, nested, mountpoint);
    owner.put({ ...row, flags: (row.flags & ~FLAGS.nestedRoot) | FLAGS.nestedMountpoint });
    owner.setNested(mountpoint, { hash: '', size: 0 });
    this.#markDirty(nested);
  }

  /** Folds the nested catalog at `mountpoint` back into its parent (its marker was removed). */
  async mergeNestedCatalog(mountpoint: string): Promise<void> {
    const nested = await this.catalogFor(mountpoint);
    if (nested.mountpoint !== mountpoint) return;
    const parent = await this.catalogFor(parentPath(mountpoint));
    moveSubtree(nested, parent, mountpoint);
    const root = nested.find(mountpoint)!;
    parent.put({ ...root, flags: root.flags & ~(FLAGS.nestedRoot | FLAGS.nestedMountpoint) });
    parent.removeNested(mountpoint);
    nested.discard();
    this.#catalogs.delete(mountpoint);
    this.#dirty.delete(mountpoint);
    this.#markDirty(parent);
  }

  /**
   * Writes every changed catalog, deepest first, and returns the new root. `rootRevision` is the
   * root's new revision (manifest S); nested catalogs count their own revisions. The root is
   * always written, so a publish that changed nothing still makes a new revision.
   */
  async commit(rootRevision: number, now: number): Promise<CommittedRoot> {
    const nested = [...this.#dirty].filter((mountpoint) => mountpoint !== '').sort((a, b) => depth(b) - depth(a));
    for (const mountpoint of nested) {
      const catalog = this.#catalogs.get(mountpoint)!;
      const sealed = await this.#seal(catalog, Number(catalog.property('revision') ?? '0') + 1, now);
      const parent = this.#catalogs.get(parentMountpoint(this.#catalogs, mountpoint))!;
      parent.setNested(mountpoint, { hash: formatContentHash(sealed.hash), size: sealed.size });
      parent.put({ ...sealed.rootRow, flags: (sealed.rootRow.flags & ~FLAGS.nestedRoot) | FLAGS.nestedMountpoint });
    }
    const root = await this.#seal(this.#catalogs.get('')!, rootRevision, now);
    return { hash: root.hash, size: root.size, catalogs: nested.length + 1 };
  }

  /** Seals one catalog with its new counters and stores it as a C object. */
  async #seal(catalog: WritableCatalog, revision: number, now: number): Promise<SealedCatalog & { hash: ContentHash }> {
    const original = catalog.originalHash;
    const sealed = catalog.seal({
      revision,
      previousRevision: original === null ? NULL_HASH : formatContentHash(original),
      lastModified: now,
      counters: { self: catalog.selfCounters(), subtree: await this.#subtreeCounts(catalog) },
    });
    const hash = await this.#store.put(await readFile(sealed.file), 'C');
    this.#totals.set(formatContentHash(hash), totalCounts(sealed.counters));
    return { ...sealed, hash };
  }

  /** Closes every catalog without committing. */
  discard(): void {
    for (const catalog of this.#catalogs.values()) catalog.discard();
    this.#catalogs.clear();
  }

  async #load(mountpoint: string, hash: ContentHash): Promise<WritableCatalog> {
    const file = this.#newFile();
    await writeFile(file, await this.#store.get(hash, 'C'));
    const catalog = WritableCatalog.open(file, mountpoint, hash);
    this.#catalogs.set(mountpoint, catalog);
    this.#totals.set(formatContentHash(hash), totalCounts(catalog.originalCounters));
    return catalog;
  }

  #newFile(): string {
    return join(this.#workDir, `catalog-${this.#fileCounter++}.db`);
  }

  /** A catalog changed, so every catalog above it gets a new nested hash. */
  #markDirty(catalog: WritableCatalog): void {
    for (let mountpoint: string | undefined = catalog.mountpoint; mountpoint !== undefined; ) {
      this.#dirty.add(mountpoint);
      mountpoint = mountpoint === '' ? undefined : parentMountpoint(this.#catalogs, mountpoint);
    }
  }

  /** Drops loaded catalogs mounted at or below a removed path; their objects are simply no longer referenced. */
  #forgetBelow(path: string): void {
    for (const [mountpoint, catalog] of this.#catalogs) {
      if (mountpoint === path || mountpoint.startsWith(`${path}/`)) {
        catalog.discard();
        this.#catalogs.delete(mountpoint);
        this.#dirty.delete(mountpoint);
      }
    }
  }

  // The stored subtree counters, minus what references that went away contributed, plus what
  // the new ones bring: unchanged nested catalogs need not be opened.
  async #subtreeCounts(catalog: WritableCatalog): Promise<Counts> {
    let subtree = catalog.originalCounters.subtree;
    for (const [path, hash] of catalog.originalNested) {
      if (catalog.nested.get(path)?.hash !== hash) subtree = addCounts(subtree, await this.#totalsOf(path, hash), -1);
    }
    for (const [path, { hash }] of catalog.nested) {
      if (catalog.originalNested.get(path) !== hash) subtree = addCounts(subtree, await this.#totalsOf(path, hash));
    }
    return subtree;
  }

  async #totalsOf(mountpoint: string, hash: string): Promise<Counts> {
    const known = this.#totals.get(hash);
    if (known !== undefined) return known;
    // A nested catalog that moved or vanished without being opened: read its statistics once.
    const file = this.#newFile();
    const contentHash = parseContentHash(hash);
    await writeFile(file, await this.#store.get(contentHash, 'C'));
    const probe = WritableCatalog.open(file, mountpoint, contentHash);
    const totals = totalCounts(probe.originalCounters);
    probe.discard();
    await rm(file, { force: true });
    this.#totals.set(hash, totals);
    return totals;
  }
}

/** The mountpoint of a direct nested catalog of `catalog` that holds `path`, if any. */
function nestedMountpointOf(catalog: WritableCatalog, path: string): string | undefined {
  if (catalog.nested.size === 0) return undefined;
  for (let candidate = path; candidate.length > catalog.mountpoint.length; candidate = parentPath(candidate)) {
    if (catalog.nested.has(candidate)) return candidate;
  }
  return undefined;
}

/** The mountpoint of the loaded catalog directly above the one at `mountpoint`. */
function parentMountpoint(catalogs: ReadonlyMap<string, WritableCatalog>, mountpoint: string): string {
  for (let candidate = parentPath(mountpoint); ; candidate = parentPath(candidate)) {
    if (catalogs.has(candidate)) return candidate;
    if (candidate === '') throw new CvmfsError('invalid-argument', `no catalog above ${mountpoint} is loaded`);
  }
}

/** Moves the rows below `path` (not `path` itself) and the nested references below it from one catalog to another. */
function moveSubtree(from: WritableCatalog, to: WritableCatalog, path: string): void {
  for (const row of [...from.descendants(path)]) {
    const chunks = from.chunks(row.path);
    to.put(row);
    if (chunks.length > 0) to.setChunks(row.path, chunks);
    from.remove(row.path);
  }
  for (const [mountpoint, reference] of [...from.nested]) {
    if (!mountpoint.startsWith(`${path}/`)) continue;
    to.setNested(mountpoint, reference);
    from.removeNested(mountpoint);
  }
}

function depth(mountpoint: string): number {
  return mountpoint === '' ? 0 : mountpoint.split('/').length;
}
