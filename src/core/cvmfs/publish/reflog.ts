// `.cvmfsreflog` (doc §1.8): every root catalog, certificate, tag database and meta-info object
// the repository ever referenced, for garbage collection and replication. A plain SQLite file
// outside data/; the manifest's Y is the hash of its bytes. Clients never read it, but
// `cvmfs_swissknife check` requires the current C, X, H and M to be listed.
import { readFile, writeFile } from 'node:fs/promises';
import { formatContentHash, type ContentHash } from '../hash.ts';
import { createWorkDatabase, openWorkDatabase } from './work-database.ts';

export const REFLOG_FILE = '.cvmfsreflog';

const REFS_DDL = 'CREATE TABLE refs (hash TEXT, type INTEGER, timestamp INTEGER, CONSTRAINT pk_refs PRIMARY KEY (hash))';
const REFERENCE_TYPES = { catalog: 0, certificate: 1, history: 2, metaInfo: 3 } as const;

export interface Reference {
  hash: ContentHash;
  type: keyof typeof REFERENCE_TYPES;
}

/**
 * The reflog with `references` added (re-adding one refreshes its timestamp), built in
 * `workFile`; `existing` is the current file, or null to start a new one.
 */
export async function addToReflog(existing: Buffer | null, workFile: string, fqrn: string, references: readonly Reference[], timestamp: number): Promise<Buffer> {
  let database;
  if (existing === null) {
    database = createWorkDatabase(workFile, [REFS_DDL], [['schema', '1.0'], ['schema_revision', '0'], ['fqrn', fqrn]]);
  } else {
    await writeFile(workFile, existing);
    database = openWorkDatabase(workFile);
  }
  const insert = database.prepare('INSERT OR REPLACE INTO refs (hash, type, timestamp) VALUES (?, ?, ?)');
  for (const reference of references) insert.run(formatContentHash(reference.hash), REFERENCE_TYPES[reference.type], timestamp);
  database.close();
  return readFile(workFile);
}
