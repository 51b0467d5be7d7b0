// A new catalog database exactly as CatalogDatabase::Create makes it (doc §2.1): the same
// tables in the same order, schema 2.5 revision 7, SQLite's 4096-byte pages and the rollback
// journal (the client's read-only VFS cannot open a WAL database).
import type { DatabaseSync } from 'node:sqlite';
import { countersToRows, zeroCounts } from './counters.ts';
import { createWorkDatabase } from './work-database.ts';

export const CATALOG_SCHEMA = '2.5';
export const CATALOG_SCHEMA_REVISION = '7';

// The statements as the real tool words them (spacing included), so `sqlite_master` matches.
const CATALOG_TABLES = [
  'CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER, ' +
    'hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, mtimens INTEGER, flags INTEGER, ' +
    'name TEXT, symlink TEXT, uid INTEGER, gid INTEGER, xattr BLOB,  CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2))',
  'CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2)',
  'CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER,  hash BLOB,  ' +
    'CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size),  FOREIGN KEY (md5path_1, md5path_2) REFERENCES    catalog(md5path_1, md5path_2))',
  'CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_nested_catalogs PRIMARY KEY (path))',
  'CREATE TABLE bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path))',
  'CREATE TABLE statistics (counter TEXT, value INTEGER, CONSTRAINT pk_statistics PRIMARY KEY (counter))',
];

/** Creates the tables, the schema properties (revision 0) and all-zero statistics in an empty file. */
export function createCatalogDatabase(file: string): DatabaseSync {
  const database = createWorkDatabase(file, CATALOG_TABLES, [
    ['schema', CATALOG_SCHEMA],
    ['schema_revision', CATALOG_SCHEMA_REVISION],
    ['revision', '0'],
  ]);
  const counter = database.prepare('INSERT INTO statistics (counter, value) VALUES (?, ?)');
  for (const [name, value] of countersToRows({ self: zeroCounts(), subtree: zeroCounts() })) counter.run(name, value);
  return database;
}
