// The SQLite files a publish writes (catalogs, reflog, tag database) are private work copies in
// the transaction directory until they are sealed, so they need no journal and no syncing: a
// failed publish throws them away. Foreign keys stay off, as in cvmfs.
import { DatabaseSync } from 'node:sqlite';

/** The `properties` table every cvmfs database starts with, worded as the real tools word it. */
const PROPERTIES_DDL = 'CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key))';

export function openWorkDatabase(file: string): DatabaseSync {
  const database = new DatabaseSync(file, { enableForeignKeyConstraints: false });
  database.exec('PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF');
  return database;
}

/** Creates `tables` and fills `properties` in a new database file. */
export function createWorkDatabase(file: string, tables: readonly string[], properties: readonly (readonly [string, string])[]): DatabaseSync {
  const database = openWorkDatabase(file);
  database.exec('PRAGMA page_size = 4096');
  for (const statement of [PROPERTIES_DDL, ...tables]) database.exec(statement);
  const insert = database.prepare('INSERT INTO properties (key, value) VALUES (?, ?)');
  for (const [key, value] of properties) insert.run(key, value);
  return database;
}
