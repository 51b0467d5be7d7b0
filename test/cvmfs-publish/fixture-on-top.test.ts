// A revision published by this publisher on top of a copy of the fixture the real cvmfs tools
// made (adopted with the fixture's TEST-ONLY keys): the old revision stays readable byte for
// byte, the new one has the changes, and the metadata the real tools keep (reflog, tag
// database, meta-info, catalog revisions) continues where they left off.
import assert from 'node:assert/strict';
import { readdir, readFile, symlink, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { formatContentHash, objectPath } from '../../src/core/cvmfs/hash.ts';
import { parseManifest, type Manifest } from '../../src/core/cvmfs/manifest.ts';
import { checkRepository } from '../../src/core/cvmfs/publish/check.ts';
import { ingest } from '../../src/core/cvmfs/publish/ingest.ts';
import { initRepository } from '../../src/core/cvmfs/publish/init.ts';
import type { Publisher } from '../../src/core/cvmfs/publish/publisher.ts';
import { Repository } from '../../src/core/cvmfs/repository.ts';
import { copyFixtureRepository, FIXTURES, FQRN, loadExpected, makeTempDir, PUBLIC_KEY, removeDir, type Expected } from '../cvmfs/fixture.ts';
import { makeHeader, writeArchive } from '../tar/helpers.ts';
import { catalogDatabases, properties, sha1, walk } from './helpers.ts';

const LAYER2 = '/.layers/35/3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931/layerfs';

let workDir: string;
let storage: string;
let publisher: Publisher;
let expected: Expected;
let previous: Manifest;
let current: Manifest;
let originalObjects: Map<string, Buffer>;

async function dataFiles(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const prefix of await readdir(join(root, 'data'))) {
    for (const name of await readdir(join(root, 'data', prefix))) files.set(`data/${prefix}/${name}`, await readFile(join(root, 'data', prefix, name)));
  }
  return files;
}

async function open(directory: string): Promise<Repository> {
  return Repository.open({ fqrn: FQRN, location: { directory }, publicKeys: PUBLIC_KEY, cache: { directory: join(workDir, `cache-${Math.random()}`), maxBytes: 1024 ** 3 } });
}

before(async () => {
  workDir = await makeTempDir('publish-on-top');
  storage = await copyFixtureRepository(workDir);
  expected = await loadExpected();
  originalObjects = await dataFiles(storage);
  const previousManifest = await readFile(join(storage, '.cvmfspublished'));
  previous = parseManifest(previousManifest, 'fixture');
  // The old revision, kept aside: its manifest beside the shared data/ directory.
  await mkdir(join(workDir, 'old-view'));
  await writeFile(join(workDir, 'old-view', '.cvmfspublished'), previousManifest);
  await symlink(join(storage, 'data'), join(workDir, 'old-view', 'data'));
  await symlink(join(storage, '.cvmfswhitelist'), join(workDir, 'old-view', '.cvmfswhitelist'));
  ({ publisher } = await initRepository(join(workDir, 'publisher'), { fqrn: FQRN, storage, importKeysFrom: join(FIXTURES, 'keys') }));
  const tar = await writeArchive([
    [makeHeader({ path: './', type: 'directory', mode: 0o755, mtime: 1_700_000_300 })],
    [makeHeader({ path: './bin/', type: 'directory', mode: 0o755 })],
    [makeHeader({ path: './bin/ping', type: 'file', mode: 0o4755, size: 5, xattrs: new Map([['security.capability', Buffer.from([1, 0, 0, 2, 0, 32, 0, 0])]]) }), Buffer.from('ping\n')],
    [makeHeader({ path: './bin/ping6', type: 'hardlink', linkname: './bin/ping' })],
    [makeHeader({ path: './lib', type: 'symlink', linkname: 'usr/lib', mode: 0o777 })],
  ]);
  await ingest(publisher, { tar: Readable.from([tar]), baseDir: '/extra', createCatalog: true, deletions: [`${LAYER2}/etc`] });
  current = parseManifest(await readFile(join(storage, '.cvmfspublished')), 'published');
});

after(async () => {
  await removeDir(workDir);
});

describe('a revision published on top of the real tools\' repository', () => {
  test('the storage was adopted with the fixture\'s keys and algorithm', () => {
    assert.equal(publisher.config.hashAlgorithm, 'sha1');
    assert.equal(publisher.config.fqrn, FQRN);
  });

  test('no object of the old revision was rewritten, and the old revision still reads in full', async () => {
    const now = await dataFiles(storage);
    for (const [path, bytes] of originalObjects) assert.ok(now.get(path)?.equals(bytes), `${path} unchanged`);
    const old = await open(join(workDir, 'old-view'));
    try {
      assert.equal(old.revision, 2);
      for (const [path, want] of Object.entries(expected.entries)) {
        const entry = await old.lookup(path);
        assert.equal(entry.mode, want.mode, path);
        if (entry.type === 'file') assert.equal(sha1(await old.readFile(path)), want.sha1, path);
      }
    } finally {
      old.close();
    }
  });

  test('the new revision has the old content, the removal and the new tree', async () => {
    const repository = await open(storage);
    try {
      assert.equal(repository.revision, 3);
      const entries = await walk(repository);
      for (const [path, want] of Object.entries(expected.entries)) {
        if (path.startsWith(`${LAYER2}/etc`)) {
          assert.equal(entries.has(path), false, `${path} was removed`);
          continue;
        }
        if (path === '/') continue;
        const entry = entries.get(path);
        assert.ok(entry, `${path} is still there`);
        if (entry.type === 'file') assert.equal(sha1(await repository.readFile(path)), want.sha1, path);
      }
      assert.equal((await repository.lookup(LAYER2)).nlink, 3, 'layerfs lost its etc subdirectory');
      assert.equal((await repository.readFile('/extra/bin/ping')).toString(), 'ping\n');
      const ping = await repository.lookup('/extra/bin/ping');
      assert.equal(ping.mode, 0o104755);
      assert.deepEqual(ping.xattrs?.get('security.capability'), Buffer.from([1, 0, 0, 2, 0, 32, 0, 0]), 'PAX xattrs are kept');
      const clone = await repository.lookup('/extra/bin/ping6');
      assert.deepEqual([clone.nlink, clone.hardlinkGroup, clone.mode, formatContentHash(clone.contentHash!)], [1, 0, ping.mode, formatContentHash(ping.contentHash!)]);
      assert.equal(await repository.readlink('/extra/lib'), 'usr/lib');
      assert.equal((await repository.lookup('/extra')).mtime, 1_700_000_300, 'the base directory took the "./" entry\'s attributes');
      assert.equal((await repository.lookup('/extra')).nestedCatalogMountpoint, true);
    } finally {
      repository.close();
    }
  });

  test('manifest, reflog, tag database and catalogs continue the real tools\' history', async () => {
    assert.equal(current.revision, 3);
    assert.ok(current.publishedAt >= previous.publishedAt);
    assert.equal(formatContentHash(current.certificate!), formatContentHash(previous.certificate!), 'the certificate object is the same');
    assert.equal(formatContentHash(current.metaInfo!), formatContentHash(previous.metaInfo!), 'meta-info is carried over');
    assert.notEqual(formatContentHash(current.history!), formatContentHash(previous.history!));

    const reflog = new DatabaseSync(join(storage, '.cvmfsreflog'), { readOnly: true });
    const refs = new Map((reflog.prepare('SELECT hash, type FROM refs').all() as { hash: string; type: number }[]).map((row) => [row.hash, row.type]));
    reflog.close();
    for (const [hash, type] of [[current.rootCatalog, 0], [previous.rootCatalog, 0], [current.certificate!, 1], [current.history!, 2], [current.metaInfo!, 3]] as const) {
      assert.equal(refs.get(formatContentHash(hash)), type, `reflog lists ${formatContentHash(hash)}`);
    }

    const historyFile = join(workDir, 'history.db');
    await writeFile(historyFile, inflateSync(await readFile(join(storage, objectPath(current.history!, 'H')))));
    const history = new DatabaseSync(historyFile, { readOnly: true });
    const tags = new Map((history.prepare('SELECT name, hash, revision FROM tags').all() as { name: string; hash: string; revision: number }[]).map((row) => [row.name, row]));
    assert.equal(properties(history).get('previous_revision'), formatContentHash(previous.history!));
    history.close();
    assert.deepEqual([tags.get('trunk')?.hash, tags.get('trunk')?.revision], [formatContentHash(current.rootCatalog), 3]);
    assert.deepEqual([tags.get('trunk-previous')?.hash, tags.get('trunk-previous')?.revision], [formatContentHash(previous.rootCatalog), 2]);
    assert.equal([...tags.keys()].filter((name) => name.startsWith('generic-')).length, 3);

    const catalogs = await catalogDatabases(storage, current.rootCatalog, workDir);
    try {
      assert.equal(properties(catalogs.get('/')!).get('previous_revision'), formatContentHash(previous.rootCatalog));
      assert.equal(properties(catalogs.get('/')!).get('revision'), '3');
      const layer2 = properties(catalogs.get(LAYER2)!);
      assert.deepEqual([layer2.get('revision'), layer2.get('previous_revision')], ['2', '96e3bdfb9ee0deed16e5ab798cf7ab9744509be6']);
      assert.equal(properties(catalogs.get('/extra')!).get('previous_revision'), '0'.repeat(40));
    } finally {
      for (const database of catalogs.values()) database.close();
    }
  });

  test('repo check finds no problems in the new revision', async () => {
    const report = await checkRepository({ fqrn: FQRN, location: { directory: storage }, publicKeys: PUBLIC_KEY });
    assert.deepEqual([report.revision, report.catalogs], [3, 4]);
  });
});
