// `repo check`: what `cvmfs_swissknife check -c` verifies (doc §2, swissknife_check.cc), through
// the same trust chain as the client: manifest signature, whitelist (signature, name, expiry,
// fingerprint), the reflog listing the current root objects, the tag database, then every
// catalog (sizes, root prefix, transition points, link counts, hardlink groups, chunk lists,
// markers, all 24 counters) and every object (present, matching its hash, inflating to the size
// the catalog gives). Stops at the first problem, which the error names.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DatabaseSync } from 'node:sqlite';
import { createInflate } from 'node:zlib';
import { ObjectCache } from '../cache.ts';
import { Catalog, type CatalogRow } from '../catalog.ts';
import { contentAlgorithm, decodeEntry, FLAGS, type Entry } from '../entry.ts';
import { CvmfsError, describeError } from '../errors.ts';
import { createContentHasher, formatContentHash, hashBytes, objectPath, type ContentHash, type ObjectSuffix } from '../hash.ts';
import { ObjectFetcher, type Compression } from '../object-fetcher.ts';
import type { ObjectSource } from '../object-source.ts';
import { createSource, type RepositoryLocation } from '../repository.ts';
import { loadPublicKeys } from '../signature.ts';
import { fetchTrustedRevision } from '../trust.ts';
import { CATALOG_MARKER } from './catalog-tree.ts';
import { addCounts, COUNTER_FIELDS, countersFromRows, totalCounts, zeroCounts, type Counts } from './counters.ts';
import { REFLOG_FILE } from './reflog.ts';

export interface CheckOptions {
  fqrn: string;
  location: RepositoryLocation;
  /** Public master key files. */
  publicKeys: string | readonly string[];
  /** Where catalogs are cached while checking (default: a temp directory, removed afterwards). */
  cacheDirectory?: string;
  now?: Date;
}

export interface CheckReport {
  revision: number;
  catalogs: number;
  entries: number;
  /** Distinct data objects verified (whole files and chunks). */
  objects: number;
}

export async function checkRepository(options: CheckOptions): Promise<CheckReport> {
  const ownCache = options.cacheDirectory === undefined ? await mkdtemp(join(tmpdir(), 'cvmfs-check-')) : undefined;
  const source = createSource(options.location, options.fqrn);
  const cache = await ObjectCache.open({ directory: options.cacheDirectory ?? ownCache!, maxBytes: Number.MAX_SAFE_INTEGER });
  try {
    const fetcher = new ObjectFetcher(source, cache);
    const { manifest } = await fetchTrustedRevision(fetcher, {
      fqrn: options.fqrn,
      publicKeys: await loadPublicKeys(options.publicKeys),
      blacklist: [],
      now: options.now ?? new Date(),
      breadcrumb: null,
    });
    const required: [string, ContentHash | null][] = [
      ['root catalog', manifest.rootCatalog],
      ['certificate', manifest.certificate],
      ['tag database', manifest.history],
      ['meta-info', manifest.metaInfo],
    ];
    if (manifest.reflog !== null) await checkReflog(source, manifest.reflog, required.filter(([, hash]) => hash !== null) as [string, ContentHash][]);
    if (manifest.history !== null) checkHistory(await fetcher.cachedPath(manifest.history, 'H', 'zlib'), formatContentHash(manifest.history));
    const checker = new TreeChecker(fetcher, source);
    await checker.inspect('', manifest.rootCatalog, manifest.rootCatalogSize, null);
    return { revision: manifest.revision, catalogs: checker.catalogs, entries: checker.entries, objects: checker.objects.size };
  } finally {
    cache.close();
    source.close();
    if (ownCache !== undefined) await rm(ownCache, { recursive: true, force: true });
  }
}

function problem(message: string): CvmfsError {
  return new CvmfsError('bad-catalog', message);
}

async function checkReflog(source: ObjectSource, expected: ContentHash, required: readonly [string, ContentHash][]): Promise<void> {
  let data: Buffer;
  try {
    data = await source.fetch(REFLOG_FILE, async (body) => Buffer.concat(await body.toArray()));
  } catch (error) {
    throw new CvmfsError('bad-data', `the manifest names reflog ${formatContentHash(expected)}, but ${REFLOG_FILE} cannot be read: ${describeError(error)}`, { cause: error });
  }
  const actual = hashBytes(expected.algorithm, data);
  if (actual.hex !== expected.hex) throw new CvmfsError('bad-data', `${REFLOG_FILE} hashes to ${formatContentHash(actual)}, the manifest says ${formatContentHash(expected)}`);
  const file = join(tmpdir(), `cvmfs-reflog-${randomBytes(6).toString('hex')}.db`);
  await writeFile(file, data);
  try {
    const database = new DatabaseSync(file, { readOnly: true });
    try {
      const listed = new Set((database.prepare('SELECT hash FROM refs').all() as { hash: string }[]).map((row) => row.hash));
      for (const [what, hash] of required) {
        if (!listed.has(formatContentHash(hash))) throw new CvmfsError('bad-data', `${REFLOG_FILE} does not list the ${what} ${formatContentHash(hash)}`);
      }
    } finally {
      database.close();
    }
  } finally {
    await rm(file, { force: true });
  }
}

function checkHistory(file: string, hash: string): void {
  const database = new DatabaseSync(file, { readOnly: true });
  try {
    const branches = new Map((database.prepare('SELECT branch, initial_revision FROM branches').all() as { branch: string; initial_revision: number }[]).map((row) => [row.branch, row.initial_revision]));
    const used = new Set<string>();
    for (const tag of database.prepare('SELECT name, revision, branch FROM tags').all() as { name: string; revision: number; branch: string }[]) {
      used.add(tag.branch);
      const initial = branches.get(tag.branch);
      if (initial === undefined) throw new CvmfsError('bad-data', `tag database ${hash}: tag ${tag.name} is on the unknown branch "${tag.branch}"`);
      if (tag.revision < initial) throw new CvmfsError('bad-data', `tag database ${hash}: tag ${tag.name} has revision ${tag.revision}, before its branch began`);
    }
    if (used.size !== branches.size) throw new CvmfsError('bad-data', `tag database ${hash} stores branches no tag uses`);
  } catch (error) {
    throw error instanceof CvmfsError ? error : new CvmfsError('bad-data', `tag database ${hash} cannot be read: ${describeError(error)}`, { cause: error });
  } finally {
    database.close();
  }
}

class TreeChecker {
  catalogs = 0;
  entries = 0;
  /** Objects already verified, by path below the repository. */
  readonly objects = new Set<string>();
  readonly #fetcher: ObjectFetcher;
  readonly #source: ObjectSource;

  constructor(fetcher: ObjectFetcher, source: ObjectSource) {
    this.#fetcher = fetcher;
    this.#source = source;
  }

  /** Checks one catalog and those below it; returns its totals (self + subtree counters). */
  async inspect(mountpoint: string, hash: ContentHash, size: number | null, transition: CatalogRow | null): Promise<Counts> {
    const where = `catalog ${formatContentHash(hash)} at ${mountpoint || '/'}`;
    const file = await this.#fetcher.cachedPath(hash, 'C', 'zlib');
    const actualSize = (await stat(file)).size;
    if (size !== null && size > 0 && size !== actualSize) throw problem(`${where} has ${actualSize} bytes, its reference says ${size}`);
    const catalog = new Catalog(file, mountpoint, hash);
    try {
      this.catalogs++;
      if (catalog.rootPrefix !== mountpoint || (mountpoint === '' && catalog.properties.has('root_prefix'))) {
        throw problem(`${where} has root prefix "${catalog.properties.get('root_prefix') ?? ''}", expected "${mountpoint}"`);
      }
      const root = catalog.find(mountpoint)!;
      if ((root.mode & 0o170000) !== 0o040000) throw problem(`${where}: its root entry is not a directory`);
      const isNestedRoot = (root.flags & FLAGS.nestedRoot) !== 0;
      if (isNestedRoot !== (transition !== null)) throw problem(`${where}: nested catalog root flag ${isNestedRoot ? 'set' : 'missing'} on its root entry`);
      if (transition !== null) compareTransitionPoint(transition, root, where);
      const self = zeroCounts();
      const mountpoints: CatalogRow[] = [];
      await this.#walk(catalog, mountpoint, root, self, mountpoints, where);
      self.dir++;
      if (root.xattr !== null) self.xattr++;
      const rows = catalog.rowCount();
      const reached = self.regular + self.symlink + self.special + self.dir;
      if (rows !== reached) throw problem(`${where} holds ${rows} rows, but only ${reached} are reachable from its root`);
      this.entries += rows;
      const references = catalog.nestedCatalogs();
      if (references.length !== mountpoints.length) {
        throw problem(`${where} references ${references.length} nested catalogs but has ${mountpoints.length} mountpoint entries`);
      }
      self.nested = references.length;
      let subtree = zeroCounts();
      for (const reference of references) {
        const point = mountpoints.find((row) => row.path === reference.mountpoint);
        if (point === undefined) throw problem(`${where} references nested catalog ${reference.mountpoint}, which is no mountpoint entry in it`);
        subtree = addCounts(subtree, await this.inspect(reference.mountpoint, reference.hash, reference.size, point));
      }
      const stored = countersFromRows(catalog.statistics(), where);
      for (const field of COUNTER_FIELDS) {
        for (const [prefix, computed, kept] of [['self', self, stored.self], ['subtree', subtree, stored.subtree]] as const) {
          if (computed[field] !== kept[field]) throw problem(`${where}: statistics counter ${prefix}_${field} is ${kept[field]}, the entries give ${computed[field]}`);
        }
      }
      return totalCounts({ self, subtree });
    } finally {
      catalog.close();
    }
  }

  async #walk(catalog: Catalog, path: string, directory: CatalogRow, self: Counts, mountpoints: CatalogRow[], where: string): Promise<void> {
    const children = catalog.children(path);
    let subdirectories = 0;
    let marker = false;
    const groups = new Map<number, Entry[]>();
    for (const row of children) {
      const entry = decodeEntry(row, catalog.mountpoint, {});
      const at = `${where}: ${row.path}`;
      if (row.name === '') throw problem(`${at} has an empty name`);
      if (row.name === CATALOG_MARKER) {
        if (path !== catalog.mountpoint) throw problem(`${at} is a nested catalog marker outside a catalog root`);
        marker = true;
      }
      if (entry.nlink === 0) throw problem(`${at} has link count 0`);
      if (entry.type !== 'dir' && entry.nlink > 1) {
        if (entry.hardlinkGroup === 0) throw problem(`${at} has link count ${entry.nlink} but no hardlink group`);
        groups.set(entry.hardlinkGroup, [...(groups.get(entry.hardlinkGroup) ?? []), entry]);
      }
      if (row.xattr !== null) self.xattr++;
      if ((row.flags & FLAGS.external) !== 0) {
        self.external++;
        self.external_file_size += row.size;
      }
      switch (entry.type) {
        case 'dir':
          self.dir++;
          subdirectories++;
          if (entry.hardlinkGroup !== 0) throw problem(`${at} is a directory in a hardlink group`);
          if (entry.nestedCatalogMountpoint) {
            if (catalog.children(row.path).length > 0) throw problem(`${at} is a nested catalog mountpoint with entries below it in the parent catalog`);
            mountpoints.push(row);
          } else {
            await this.#walk(catalog, row.path, row, self, mountpoints, where);
          }
          break;
        case 'symlink':
          self.symlink++;
          if (row.hash !== null) throw problem(`${at} is a symlink with a content hash`);
          break;
        case 'file':
          self.regular++;
          self.file_size += row.size;
          await this.#checkContent(catalog, row, entry, self, at);
          break;
        default:
          self.special++;
          if (row.hash !== null || row.symlink !== '') throw problem(`${at} is a special file with a content hash or link target`);
      }
    }
    if (path === catalog.mountpoint && path !== '' && !marker) throw problem(`${where}: nested catalog without its ${CATALOG_MARKER} marker`);
    const linkcount = Number(directory.hardlinks & 0xffffffffn);
    if (linkcount !== subdirectories + 2) throw problem(`${where}: ${path || '/'} has link count ${linkcount}, expected ${subdirectories + 2} (2 + subdirectories)`);
    for (const [group, members] of groups) {
      if (members[0]!.nlink !== members.length) throw problem(`${where}: hardlink group ${group} in ${path || '/'} has ${members.length} members but link count ${members[0]!.nlink}`);
    }
  }

  async #checkContent(catalog: Catalog, row: CatalogRow, entry: Entry, self: Counts, at: string): Promise<void> {
    if (entry.external) return;
    if (!entry.chunked) {
      if (entry.contentHash === null) throw problem(`${at} is a regular file without a content hash`);
      await this.#verifyObject(entry.contentHash, '', entry.compression, row.size, at);
      return;
    }
    const chunks = catalog.chunksInRange(row.path, 0, Number.MAX_SAFE_INTEGER, contentAlgorithm(entry));
    self.chunked++;
    self.chunked_size += row.size;
    self.chunks += chunks.length;
    if (chunks.length === 0) throw problem(`${at} is chunked but has no chunks`);
    let next = 0;
    for (const chunk of chunks) {
      if (chunk.offset !== next) throw problem(`${at}: chunk at offset ${chunk.offset} does not follow the previous one (expected ${next})`);
      next = chunk.offset + chunk.size;
      await this.#verifyObject(chunk.hash, 'P', entry.compression, chunk.size, `${at} chunk at ${chunk.offset}`);
    }
    if (next !== row.size) throw problem(`${at}: chunks cover ${next} bytes of ${row.size}`);
  }

  /** The object exists, its bytes match its name and inflate to `size`. */
  async #verifyObject(hash: ContentHash, suffix: ObjectSuffix, compression: Compression, size: number, what: string): Promise<void> {
    const path = objectPath(hash, suffix);
    if (this.objects.has(path)) return;
    const hasher = createContentHasher(hash.algorithm);
    let inflated = 0;
    try {
      await this.#source.fetch(path, async (body: Readable) => {
        const hashing = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hasher.update(chunk);
            done(null, chunk);
          },
        });
        const counting = new Writable({
          write(chunk: Buffer, _encoding, done) {
            inflated += chunk.length;
            done();
          },
        });
        await pipeline(body, hashing, ...(compression === 'zlib' ? [createInflate()] : []), counting);
      });
    } catch (error) {
      throw new CvmfsError('bad-data', `${what}: object ${path} is missing or damaged: ${describeError(error)}`, { cause: error });
    }
    const actual = hasher.digest('hex');
    if (actual !== hash.hex) throw new CvmfsError('bad-data', `${what}: object ${path} hashes to ${actual}`);
    if (inflated !== size) throw new CvmfsError('bad-data', `${what}: object ${path} holds ${inflated} bytes, the catalog says ${size}`);
    this.objects.add(path);
  }
}

/** The parent's mountpoint row and the nested catalog's root row describe one directory. */
function compareTransitionPoint(point: CatalogRow, root: CatalogRow, where: string): void {
  const fields = ['name', 'hardlinks', 'size', 'mode', 'mtime', 'symlink'] as const;
  for (const field of fields) {
    if (point[field] !== root[field]) throw problem(`${where}: mountpoint entry and root entry differ in ${field} (${String(point[field])} / ${String(root[field])})`);
  }
  if ((point.xattr === null) !== (root.xattr === null)) throw problem(`${where}: mountpoint entry and root entry differ in extended attributes`);
}
