// Shared pieces of the publisher tests: fresh publisher directories, readers opened on what was
// published, whole-tree walks, and object counts by kind.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import type { Entry } from '../../src/core/cvmfs/entry.ts';
import { formatContentHash, parseContentHash, type ContentHash } from '../../src/core/cvmfs/hash.ts';
import { ObjectStore } from '../../src/core/cvmfs/publish/object-store.ts';
import { initRepository, type InitOptions } from '../../src/core/cvmfs/publish/init.ts';
import type { Publisher } from '../../src/core/cvmfs/publish/publisher.ts';
import { Repository } from '../../src/core/cvmfs/repository.ts';

export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
export const NODE = process.execPath;

export const LAYER1_DIGEST = 'sha256:ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789';
export const LAYER2_DIGEST = 'sha256:3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931';

/** A new repository in a new publisher directory below `parent`. */
export async function newPublisher(parent: string, options: Partial<InitOptions> = {}): Promise<Publisher> {
  const { publisher } = await initRepository(join(parent, 'publisher'), { fqrn: 'publish.cvmfs.test', ...options });
  return publisher;
}

/** The current revision as a client sees it, verified with the publisher's own public key; a fresh cache below `workDir`. */
export async function openPublished(publisher: Publisher, workDir: string, now?: () => Date): Promise<Repository> {
  return Repository.open({
    fqrn: publisher.config.fqrn,
    location: { directory: publisher.paths.storage },
    publicKeys: join(publisher.paths.keys, `${publisher.config.fqrn}.pub`),
    cache: { directory: join(workDir, `cache-${randomUUID()}`), maxBytes: 1024 ** 3 },
    now,
  });
}

/** Every entry below `path`, keyed by path. */
export async function walk(repository: Repository, path = '/', into = new Map<string, Entry>()): Promise<Map<string, Entry>> {
  for (const entry of await repository.readdir(path)) {
    into.set(entry.path, entry);
    if (entry.type === 'dir') await walk(repository, entry.path, into);
  }
  return into;
}

export function sha1(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

/** Object files under data/, grouped by suffix ("" for whole files). */
export async function objectsBySuffix(storage: string): Promise<Map<string, Set<string>>> {
  const groups = new Map<string, Set<string>>();
  for (const prefix of await readdir(join(storage, 'data'))) {
    for (const name of await readdir(join(storage, 'data', prefix))) {
      const suffix = /[A-Z]$/.test(name) ? name.slice(-1) : '';
      if (!groups.has(suffix)) groups.set(suffix, new Set());
      groups.get(suffix)!.add(`${prefix}${name}`);
    }
  }
  return groups;
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode), so chunk boundaries are reproducible. */
export function pseudoRandom(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  const counter = Buffer.alloc(8);
  for (let offset = 0, i = 0n; offset < size; offset += 32, i++) {
    counter.writeBigUInt64BE(i);
    createHash('sha256').update(seed).update(counter).digest().copy(out, offset);
  }
  return out;
}

/** Every catalog of the revision whose root is `rootHash`, decompressed into `workDir`, by mountpoint ("/" = root). */
export async function catalogDatabases(storage: string, rootHash: ContentHash, workDir: string): Promise<Map<string, DatabaseSync>> {
  const store = new ObjectStore(storage, workDir, rootHash.algorithm);
  const databases = new Map<string, DatabaseSync>();
  const pending: [string, ContentHash][] = [['/', rootHash]];
  while (pending.length > 0) {
    const [mountpoint, hash] = pending.pop()!;
    const file = join(workDir, `${formatContentHash(hash)}.db`);
    await writeFile(file, await store.get(hash, 'C'));
    const database = new DatabaseSync(file, { readOnly: true });
    databases.set(mountpoint, database);
    for (const row of database.prepare('SELECT path, sha1 FROM nested_catalogs').all() as { path: string; sha1: string }[]) {
      pending.push([row.path, parseContentHash(row.sha1)]);
    }
  }
  return databases;
}

export function properties(database: DatabaseSync): Map<string, string> {
  return new Map((database.prepare('SELECT key, value FROM properties').all() as { key: string; value: string }[]).map((row) => [row.key, String(row.value)]));
}

export function statistics(database: DatabaseSync): Map<string, number> {
  return new Map((database.prepare('SELECT counter, value FROM statistics').all() as { counter: string; value: number }[]).map((row) => [row.counter, Number(row.value)]));
}

export function schemaStatements(database: DatabaseSync): string[] {
  return (database.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all() as { type: string; name: string; sql: string | null }[]).map(
    (row) => `${row.type} ${row.name}: ${row.sql ?? ''}`,
  );
}
