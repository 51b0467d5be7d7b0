// Builds small repositories for features the real-tools fixture lacks (chunked files, xattrs,
// RMD160/SHAKE128 hashes, uncompressed objects, hardlink groups, variant symlinks, hidden
// entries, nested catalogs two levels deep). Catalog layout follows the format notes (§2); the
// manifest and whitelist are signed with the fixture's TEST-ONLY keys.
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { deflateSync } from 'node:zlib';
import { formatContentHash, hashBytes, objectPath, type ContentHash, type HashAlgorithm, type ObjectSuffix } from '../../src/core/cvmfs/hash.ts';
import { parentPath, pathHash } from '../../src/core/cvmfs/path-hash.ts';
import { serializeXattrs } from '../../src/core/cvmfs/xattr.ts';
import { REPOSITORY_DIR, signManifest, signWhitelist } from './fixture.ts';

export async function storeObject(
  repositoryDir: string,
  data: Buffer,
  options: { algorithm?: HashAlgorithm; suffix?: ObjectSuffix; compress?: boolean } = {},
): Promise<ContentHash> {
  const stored = options.compress === false ? data : deflateSync(data);
  const hash = hashBytes(options.algorithm ?? 'sha1', stored);
  const path = join(repositoryDir, objectPath(hash, options.suffix ?? ''));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, stored);
  return hash;
}

export interface EntrySpec {
  /** "" for the catalog's root directory. */
  path: string;
  mode: number;
  flags: number;
  size?: number;
  mtime?: number;
  uid?: number;
  gid?: number;
  hash?: ContentHash | null;
  symlink?: string;
  /** group << 32 | linkcount */
  hardlinks?: bigint;
  xattrs?: Record<string, Buffer>;
  chunks?: { offset: number; size: number; hash: ContentHash }[];
}

export interface NestedSpec {
  path: string;
  hash: ContentHash;
  size: number;
}

const DDL = `
CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));
CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER,
  hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, mtimens INTEGER,
  flags INTEGER, name TEXT, symlink TEXT, uid INTEGER, gid INTEGER, xattr BLOB,
  CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2));
CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2);
CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER, hash BLOB,
  CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size));
CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_nested_catalogs PRIMARY KEY (path));
CREATE TABLE bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path));
CREATE TABLE statistics (counter TEXT, value INTEGER, CONSTRAINT pk_statistics PRIMARY KEY (counter));
`;

/**
 * The uncompressed SQLite bytes of a catalog mounted at `mountpoint` ("" for the root). Entry paths
 * are as stored: under `rootPrefix`, which is the mountpoint unless given.
 */
export async function buildCatalog(
  workDir: string,
  mountpoint: string,
  entries: readonly EntrySpec[],
  nested: readonly NestedSpec[] = [],
  rootPrefix = mountpoint,
): Promise<Buffer> {
  const file = join(workDir, `catalog-${randomBytes(6).toString('hex')}.db`);
  const db = new DatabaseSync(file);
  db.exec(DDL);
  const property = db.prepare('INSERT INTO properties VALUES (?, ?)');
  property.run('schema', '2.5');
  property.run('schema_revision', '7');
  property.run('revision', '1');
  if (rootPrefix !== '') property.run('root_prefix', rootPrefix);
  const insert = db.prepare('INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const insertChunk = db.prepare('INSERT INTO chunks VALUES (?, ?, ?, ?, ?)');
  for (const entry of entries) {
    const [md5a, md5b] = pathHash(entry.path);
    // Only the repository root has the null parent; a nested root points at its real parent.
    const [parentA, parentB] = entry.path === '' ? [0n, 0n] : pathHash(parentPath(entry.path));
    insert.run(
      md5a, md5b, parentA, parentB,
      entry.hardlinks ?? 1n,
      entry.hash ? Buffer.from(entry.hash.hex, 'hex') : null,
      entry.size ?? 0, entry.mode, entry.mtime ?? 1700000000, null, entry.flags,
      entry.path.slice(entry.path.lastIndexOf('/') + 1),
      entry.symlink ?? '', entry.uid ?? 0, entry.gid ?? 0,
      entry.xattrs ? serializeXattrs(new Map(Object.entries(entry.xattrs))) : null,
    );
    for (const chunk of entry.chunks ?? []) insertChunk.run(md5a, md5b, chunk.offset, chunk.size, Buffer.from(chunk.hash.hex, 'hex'));
  }
  const insertNested = db.prepare('INSERT INTO nested_catalogs VALUES (?, ?, ?)');
  for (const reference of nested) insertNested.run(reference.path, formatContentHash(reference.hash), reference.size);
  db.close();
  return readFile(file);
}

const DIR = 0o040755;
const FILE = 0o100644;

export interface SyntheticRepository {
  fqrn: string;
  directory: string;
  /** Content of every regular file by path. */
  files: Record<string, Buffer>;
  chunkedPath: string;
  chunks: { offset: number; size: number; hash: ContentHash }[];
  rootCatalog: ContentHash;
}

export const SYNTHETIC_FQRN = 'synthetic.cvmfs.test';

export async function buildSyntheticRepository(parent: string): Promise<SyntheticRepository> {
  const directory = join(parent, SYNTHETIC_FQRN);
  await mkdir(directory, { recursive: true });
  const files: Record<string, Buffer> = {};

  // A file in three SHAKE128 chunks of unequal size.
  const chunked = randomBytes(5000);
  files['/chunked.bin'] = chunked;
  const chunks = [];
  for (const [offset, size] of [[0, 1200], [1200, 1800], [3000, 2000]] as const) {
    chunks.push({ offset, size, hash: await storeObject(directory, chunked.subarray(offset, offset + size), { algorithm: 'shake128', suffix: 'P' }) });
  }
  files['/rmd160.txt'] = Buffer.from('hashed with RIPEMD-160\n');
  files['/uncompressed.txt'] = Buffer.from('stored without zlib\n');
  files['/xattrs.txt'] = Buffer.from('has extended attributes\n');
  files['/hardlink-a'] = files['/hardlink-b'] = Buffer.from('one inode, two names\n');
  files['/nested/file.txt'] = Buffer.from('in the first nested catalog\n');
  files['/nested/deeper/leaf.txt'] = Buffer.from('two nested catalogs down\n');
  const hashOf = (path: string, options?: Parameters<typeof storeObject>[2]) => storeObject(directory, files[path]!, options);

  const deeper = await buildCatalog(parent, '/nested/deeper', [
    { path: '/nested/deeper', mode: DIR, flags: 33, size: 4096, hardlinks: 2n },
    { path: '/nested/deeper/leaf.txt', mode: FILE, flags: 4, size: files['/nested/deeper/leaf.txt']!.length, hash: await hashOf('/nested/deeper/leaf.txt') },
  ]);
  const deeperHash = await storeObject(directory, deeper, { suffix: 'C' });
  const nested = await buildCatalog(
    parent,
    '/nested',
    [
      { path: '/nested', mode: DIR, flags: 33, size: 4096, hardlinks: 3n },
      { path: '/nested/file.txt', mode: FILE, flags: 4, size: files['/nested/file.txt']!.length, hash: await hashOf('/nested/file.txt') },
      { path: '/nested/deeper', mode: DIR, flags: 3, size: 4096, hardlinks: 2n },
    ],
    [{ path: '/nested/deeper', hash: deeperHash, size: deeper.length }],
  );
  const nestedHash = await storeObject(directory, nested, { suffix: 'C' });
  const hardlinkHash = await hashOf('/hardlink-a');
  const root = await buildCatalog(
    parent,
    '',
    [
      { path: '', mode: DIR, flags: 1, size: 4096, hardlinks: 3n },
      { path: '/chunked.bin', mode: FILE, flags: 4 | 64 | (2 << 8), size: chunked.length, chunks },
      { path: '/rmd160.txt', mode: FILE, flags: 4 | (1 << 8), size: files['/rmd160.txt']!.length, hash: await hashOf('/rmd160.txt', { algorithm: 'rmd160' }) },
      { path: '/uncompressed.txt', mode: FILE, flags: 4 | (1 << 11), size: files['/uncompressed.txt']!.length, hash: await hashOf('/uncompressed.txt', { compress: false }) },
      {
        path: '/xattrs.txt', mode: FILE, flags: 4, size: files['/xattrs.txt']!.length, hash: await hashOf('/xattrs.txt'),
        xattrs: { 'user.binary': Buffer.from([0, 1, 2, 255]), 'user.comment': Buffer.from('hello') },
      },
      { path: '/hardlink-a', mode: FILE, flags: 4, size: files['/hardlink-a']!.length, hash: hardlinkHash, hardlinks: (1n << 32n) | 2n },
      { path: '/hardlink-b', mode: FILE, flags: 4, size: files['/hardlink-b']!.length, hash: hardlinkHash, hardlinks: (1n << 32n) | 2n },
      { path: '/variant', mode: 0o120777, flags: 12, symlink: '/opt/$(SYNTHETIC_ARCH:-generic)/lib' },
      { path: '/.hidden', mode: DIR, flags: 1 | 0x8000, size: 4096, hardlinks: 2n },
      { path: '/nested', mode: DIR, flags: 3, size: 4096, hardlinks: 3n },
    ],
    [{ path: '/nested', hash: nestedHash, size: nested.length }],
  );
  const rootCatalog = await storeObject(directory, root, { suffix: 'C' });
  await publish(directory, SYNTHETIC_FQRN, rootCatalog, root.length);
  return { fqrn: SYNTHETIC_FQRN, directory, files, chunkedPath: '/chunked.bin', chunks, rootCatalog };
}

/** Signs a manifest for `rootCatalog` (reusing the fixture's certificate) and a whitelist. */
export async function publish(directory: string, fqrn: string, rootCatalog: ContentHash, rootSize: number, revision = 5): Promise<void> {
  const certificate = '61a2012763ec4efb8fdaa607b8e31b9902642c0a';
  const certificatePath = `data/${certificate.slice(0, 2)}/${certificate.slice(2)}X`;
  await mkdir(dirname(join(directory, certificatePath)), { recursive: true });
  await copyFile(join(REPOSITORY_DIR, certificatePath), join(directory, certificatePath));
  const manifest = await signManifest([
    ['C', rootCatalog.hex],
    ['B', String(rootSize)],
    ['R', createHash('md5').update('').digest('hex')],
    ['D', '240'],
    ['S', String(revision)],
    ['G', 'no'],
    ['A', 'no'],
    ['N', fqrn],
    ['X', certificate],
    ['T', '1795905500'],
  ]);
  await writeFile(join(directory, '.cvmfspublished'), manifest);
  await writeFile(join(directory, '.cvmfswhitelist'), await signWhitelist({ fqrn, expires: '20361125223701' }));
}
