// Nested catalogs made and unmade by `.cvmfscatalog` markers, as cvmfs_server does it: a marker
// in a tar splits its directory off into a catalog, removing the marker folds that catalog back
// into its parent, and removing a directory drops the catalogs below it; the counters and link
// counts stay what `repo check` recomputes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { checkRepository } from '../../src/core/cvmfs/publish/check.ts';
import { ingest } from '../../src/core/cvmfs/publish/ingest.ts';
import type { Publisher } from '../../src/core/cvmfs/publish/publisher.ts';
import { makeTempDir, removeDir } from '../cvmfs/fixture.ts';
import { makeHeader, writeArchive } from '../tar/helpers.ts';
import { newPublisher, openPublished } from './helpers.ts';

let workDir: string;
let publisher: Publisher;

const file = (path: string, text = '') => [makeHeader({ path, size: Buffer.byteLength(text) }), Buffer.from(text)] as const;
const directory = (path: string) => [makeHeader({ path, type: 'directory' })] as const;

/** Mountpoint of the catalog holding each path, as the reader finds them; and a clean check. */
async function catalogsOf(paths: readonly string[]): Promise<string[]> {
  await checkRepository({ fqrn: publisher.config.fqrn, location: { directory: publisher.paths.storage }, publicKeys: join(publisher.paths.keys, `${publisher.config.fqrn}.pub`) });
  const repository = await openPublished(publisher, workDir);
  try {
    const result = [];
    for (const path of paths) {
      const entry = await repository.lookup(path);
      if (entry.type === 'file') assert.equal((await repository.readFile(path)).toString(), path);
      result.push(entry.catalogMountpoint);
    }
    return result;
  } finally {
    repository.close();
  }
}

before(async () => {
  workDir = await makeTempDir('publish-catalogs');
  publisher = await newPublisher(workDir);
});

after(() => removeDir(workDir));

describe('nested catalogs from markers', () => {
  const files = ['/t/a/top', '/t/a/b/file', '/t/a/c/file', '/t/a/c/d/file'];

  test('markers in a tar make their directories catalogs, nested in each other', async () => {
    const tar = await writeArchive([
      directory('a/'),
      file('a/top', '/t/a/top'),
      directory('a/b/'),
      file('a/b/file', '/t/a/b/file'),
      file('a/b/.cvmfscatalog'),
      directory('a/c/'),
      file('a/c/.cvmfscatalog'),
      file('a/c/file', '/t/a/c/file'),
      directory('a/c/d/'),
      file('a/c/d/file', '/t/a/c/d/file'),
      file('a/c/d/.cvmfscatalog'),
    ]);
    await ingest(publisher, { tar: Readable.from([tar]), baseDir: '/t' });
    assert.deepEqual(await catalogsOf(files), ['/', '/t/a/b', '/t/a/c', '/t/a/c/d']);
  });

  test('removing a marker folds its catalog into the parent, keeping the catalogs below', async () => {
    await ingest(publisher, { deletions: ['/t/a/c/.cvmfscatalog'] });
    assert.deepEqual(await catalogsOf(files), ['/', '/t/a/b', '/', '/t/a/c/d']);
  });

  test('removing a directory drops every catalog below it', async () => {
    await ingest(publisher, { deletions: ['/t/a/c', '/t/a/b'] });
    assert.deepEqual(await catalogsOf(['/t/a/top']), ['/']);
    const repository = await openPublished(publisher, workDir);
    try {
      assert.deepEqual((await repository.readdir('/t/a')).map((entry) => entry.name), ['top']);
      assert.equal((await repository.lookup('/t/a')).nlink, 2);
    } finally {
      repository.close();
    }
  });

  test('a marker that is not a regular file is refused', async () => {
    const tar = await writeArchive([[makeHeader({ path: 'x/.cvmfscatalog', type: 'symlink', linkname: 'elsewhere' })]]);
    await assert.rejects(ingest(publisher, { tar: Readable.from([tar]), baseDir: '/bad' }), /is a symlink; a \.cvmfscatalog must be a regular file/);
  });
});
