// The fixture's two layers ingested by this publisher into a new repository with DUCC's layout,
// then read back by the reader and compared with what the real cvmfs tools made of the same tars
// (expected.json and the fixture's catalogs).
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import type { Entry } from '../../src/core/cvmfs/entry.ts';
import { formatContentHash, parseContentHash } from '../../src/core/cvmfs/hash.ts';
import { checkRepository } from '../../src/core/cvmfs/publish/check.ts';
import { ingest } from '../../src/core/cvmfs/publish/ingest.ts';
import type { Publisher } from '../../src/core/cvmfs/publish/publisher.ts';
import type { Repository } from '../../src/core/cvmfs/repository.ts';
import { FIXTURES, loadExpected, makeTempDir, removeDir, REPOSITORY_DIR, type Expected } from '../cvmfs/fixture.ts';
import {
  catalogDatabases, LAYER1_DIGEST, LAYER2_DIGEST, newPublisher, openPublished, properties, schemaStatements, sha1, statistics, walk,
} from './helpers.ts';

const LAYER1 = '/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs';
const LAYER2 = '/.layers/35/3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931/layerfs';
// DUCC makes these catalogs too; the fixture's plain `ingest --catalog` does not.
const DUCC_CATALOGS = ['/.layers', '/.layers/ea', '/.layers/35'];

let workDir: string;
let publisher: Publisher;
let repository: Repository;
let entries: Map<string, Entry>;
let expected: Expected;
let startedAt: number;
let ours: Map<string, DatabaseSync>;
let theirs: Map<string, DatabaseSync>;

before(async () => {
  workDir = await makeTempDir('publish-layers');
  startedAt = Math.floor(Date.now() / 1000);
  publisher = await newPublisher(workDir);
  await ingest(publisher, { tar: createReadStream(join(FIXTURES, 'layer1.tar')), layerDigest: LAYER1_DIGEST });
  await ingest(publisher, { tar: createReadStream(join(FIXTURES, 'layer2.tar')), layerDigest: LAYER2_DIGEST });
  repository = await openPublished(publisher, workDir);
  entries = await walk(repository);
  expected = await loadExpected();
  ours = await catalogDatabases(publisher.paths.storage, repository.manifest.rootCatalog, workDir);
  theirs = await catalogDatabases(REPOSITORY_DIR, parseContentHash(expected.manifest.fields.C!), workDir);
});

after(async () => {
  for (const database of [...(ours?.values() ?? []), ...(theirs?.values() ?? [])]) database.close();
  repository?.close();
  await removeDir(workDir);
});

describe('the fixture layers published in DUCC layout', () => {
  test('every path the real tools published is there with the same type, mode, owner, size, target and content', async () => {
    for (const [path, want] of Object.entries(expected.entries)) {
      if (path === '/') continue;
      const got = entries.get(path);
      assert.ok(got, `${path} is missing`);
      const where = `${path}: `;
      assert.equal(got.type, want.type, where + 'type');
      assert.equal(got.mode, want.mode, where + 'mode');
      assert.equal(got.catalogSize, want.size, where + 'size');
      assert.equal(got.uid, want.uid, where + 'uid');
      assert.equal(got.gid, want.gid, where + 'gid');
      assert.equal(got.symlink, want.symlink, where + 'symlink');
      assert.deepEqual(got.rdev, want.rdev, where + 'rdev');
      assert.equal(got.xattrs, null, where + 'xattrs');
      assert.equal(got.mtimeNs, want.mtimeNs, where + 'mtimeNs');
      assert.equal(got.hardlinkGroup, want.hardlinkGroup, where + 'hardlink group');
      assert.equal(got.nlink, want.linkcount, where + 'link count');
      assert.equal(got.size, want.stat.size, where + 'size as stat shows it');
      // Placeholders and markers carry the publish time; everything from the tars its own mtime.
      if (want.mtime > 1_790_000_000) assert.ok(got.mtime >= startedAt, where + 'mtime is the publish time');
      else assert.equal(got.mtime, want.mtime, where + 'mtime');
      if (DUCC_CATALOGS.includes(path)) assert.equal(got.flags, 3, where + 'a DUCC catalog mountpoint');
      else assert.equal(got.flags, want.flags, where + 'flags');
      if (got.type === 'file') {
        assert.equal(sha1(await repository.readFile(path)), want.sha1, where + 'content');
        // Same zlib, same level: small objects come out byte-identical to cvmfs_server's, so they deduplicate.
        if (got.size < 1024 * 1024) assert.equal(formatContentHash(got.contentHash!), want.contentHash, where + 'content hash');
      }
    }
    const extra = [...entries.keys()].filter((path) => expected.entries[path] === undefined).sort();
    assert.deepEqual(extra, DUCC_CATALOGS.map((path) => `${path}/.cvmfscatalog`).sort());
  });

  test('the catalogs have the tables, properties and statistics counters of the real tools\' catalogs', () => {
    assert.deepEqual([...ours.keys()].sort(), ['/', ...DUCC_CATALOGS, LAYER1, LAYER2].sort());
    const fixtureRoot = theirs.get('/')!;
    const fixtureNested = theirs.get(LAYER1)!;
    for (const [mountpoint, database] of ours) {
      const reference = mountpoint === '/' ? fixtureRoot : fixtureNested;
      assert.deepEqual(schemaStatements(database), schemaStatements(reference), `${mountpoint}: tables and indexes`);
      assert.deepEqual([...properties(database).keys()].sort(), [...properties(reference).keys()].sort(), `${mountpoint}: property keys`);
      assert.deepEqual([...statistics(database).keys()], [...statistics(reference).keys()], `${mountpoint}: statistics counters, in order`);
      assert.equal(database.prepare('PRAGMA page_size').get()!.page_size, 4096);
      assert.equal(database.prepare('PRAGMA journal_mode').get()!.journal_mode, 'delete', `${mountpoint}: rollback journal, not WAL`);
      const props = properties(database);
      assert.equal(props.get('root_prefix'), mountpoint === '/' ? undefined : mountpoint);
      assert.equal(props.get('schema'), '2.5');
      assert.equal(props.get('schema_revision'), '7');
    }
    // The layers' own catalogs count exactly what the real tools counted for the same tars.
    for (const layer of [LAYER1, LAYER2]) {
      const counters = (database: DatabaseSync) => [...statistics(database)].filter(([name]) => name.startsWith('self_'));
      assert.deepEqual(counters(ours.get(layer)!), counters(theirs.get(layer)!), `${layer}: self counters`);
      assert.equal(properties(ours.get(layer)!).get('revision'), '1');
      assert.equal(properties(ours.get(layer)!).get('previous_revision'), '0'.repeat(40));
    }
    const rootTotals = statistics(ours.get('/')!);
    const fixtureTotals = statistics(fixtureRoot);
    for (const field of ['file_size', 'symlink', 'special', 'chunked', 'xattr']) {
      assert.equal(rootTotals.get(`subtree_${field}`), fixtureTotals.get(`subtree_${field}`), `root subtree_${field}`);
    }
    // Three more markers than the fixture: one per DUCC catalog.
    assert.equal(rootTotals.get('subtree_regular'), fixtureTotals.get('subtree_regular')! + DUCC_CATALOGS.length);
    assert.equal(properties(ours.get('/')!).get('revision'), String(repository.revision));
  });

  test('the manifest is revision 2 and repo check finds no problems', async () => {
    assert.equal(repository.revision, 2);
    assert.ok(repository.manifest.publishedAt >= startedAt);
    const report = await checkRepository({
      fqrn: publisher.config.fqrn,
      location: { directory: publisher.paths.storage },
      publicKeys: join(publisher.paths.keys, `${publisher.config.fqrn}.pub`),
    });
    assert.equal(report.catalogs, 6);
    assert.equal(report.revision, 2);
  });
});
