// The tag database (manifest H, doc §1.8): every publish adds the automatic tag
// "generic-<UTC time>" and moves "trunk" (and "trunk-previous") as cvmfs_server's tag_edit does.
// Clients only read it for CVMFS_REPOSITORY_TAG/DATE; `cvmfs_swissknife check` checks its branches.
import { readFile, writeFile } from 'node:fs/promises';
import { formatContentHash, type ContentHash } from '../hash.ts';
import { createWorkDatabase, openWorkDatabase } from './work-database.ts';

// Worded as history_sql.cc words them.
const HISTORY_TABLES = [
  "CREATE TABLE branches (branch TEXT, parent TEXT, initial_revision INTEGER,  CONSTRAINT pk_branch PRIMARY KEY (branch),   FOREIGN KEY (parent) REFERENCES branches (branch),   CHECK ((branch <> '') OR (parent IS NULL)),   CHECK ((branch = '') OR (parent IS NOT NULL)))",
  'CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER,   timestamp INTEGER, channel INTEGER, description TEXT, size INTEGER,   branch TEXT, CONSTRAINT pk_tags PRIMARY KEY (name),   FOREIGN KEY (branch) REFERENCES branches (branch))',
  'CREATE TABLE recycle_bin (hash TEXT, flags INTEGER,   CONSTRAINT pk_hash PRIMARY KEY (hash))',
];

export interface TaggedRevision {
  rootCatalog: ContentHash;
  /** Uncompressed size of the root catalog. */
  rootCatalogSize: number;
  revision: number;
  timestamp: number;
}

/**
 * The tag database with `tagged` recorded, built in `workFile`. `existing` is the current one
 * (decompressed) with its hash, or null to start a new one.
 */
export async function recordRevision(existing: { data: Buffer; hash: ContentHash } | null, workFile: string, fqrn: string, tagged: TaggedRevision): Promise<Buffer> {
  let database;
  if (existing === null) {
    database = createWorkDatabase(workFile, HISTORY_TABLES, [['schema', '1.0'], ['schema_revision', '3'], ['fqrn', fqrn], ['previous_revision', '0'.repeat(40)]]);
    database.prepare("INSERT INTO branches (branch, parent, initial_revision) VALUES ('', NULL, 0)").run();
  } else {
    await writeFile(workFile, existing.data);
    database = openWorkDatabase(workFile);
    database.prepare("INSERT OR REPLACE INTO properties (key, value) VALUES ('previous_revision', ?)").run(formatContentHash(existing.hash));
  }
  const insert = database.prepare(
    "INSERT OR REPLACE INTO tags (name, hash, revision, timestamp, channel, description, size, branch) VALUES (?, ?, ?, ?, 0, ?, ?, '')",
  );
  const tag = (name: string, description: string) =>
    insert.run(name, formatContentHash(tagged.rootCatalog), tagged.revision, tagged.timestamp, description, tagged.rootCatalogSize);
  tag(`generic-${new Date(tagged.timestamp * 1000).toISOString().replace(/\.\d+Z$/, 'Z')}`, '');
  database.exec("INSERT OR REPLACE INTO tags SELECT 'trunk-previous', hash, revision, timestamp, channel, 'default undo target', size, branch FROM tags WHERE name = 'trunk'");
  tag('trunk', 'current HEAD');
  database.close();
  return readFile(workFile);
}
