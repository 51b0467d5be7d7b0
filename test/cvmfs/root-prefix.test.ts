// A catalog may store its entries under another path than where it is mounted (its root_prefix,
// doc §2.2). Its rows then carry the path hashes of those stored paths; what the reader shows,
// including the inode numbers that derive from path hashes, must be those of the mounted paths.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Repository } from '../../src/core/cvmfs/repository.ts';
import { makeTempDir, PUBLIC_KEY, removeDir } from './fixture.ts';
import { buildCatalog, publish, storeObject } from './repo-builder.ts';

const FQRN = 'root-prefix.cvmfs.test';
const DIR = 0o040755;
const FILE = 0o100644;

let workDir: string;
let repository: Repository;

before(async () => {
  workDir = await makeTempDir('root-prefix');
  const directory = join(workDir, FQRN);
  await mkdir(directory);
  const content = Buffer.from('stored under /original, mounted at /moved\n');
  const hash = await storeObject(directory, content);
  // The nested catalog mounted at /moved holds a copy of /original, stored under /original.
  const moved = await buildCatalog(
    workDir,
    '/moved',
    [
      { path: '/original', mode: DIR, flags: 33, size: 4096, hardlinks: 2n },
      { path: '/original/file.txt', mode: FILE, flags: 4, size: content.length, hash },
    ],
    [],
    '/original',
  );
  const movedHash = await storeObject(directory, moved, { suffix: 'C' });
  const root = await buildCatalog(
    workDir,
    '',
    [
      { path: '', mode: DIR, flags: 1, size: 4096, hardlinks: 4n },
      { path: '/original', mode: DIR, flags: 1, size: 4096, hardlinks: 2n },
      { path: '/original/file.txt', mode: FILE, flags: 4, size: content.length, hash },
      { path: '/moved', mode: DIR, flags: 3, size: 4096, hardlinks: 2n },
    ],
    [{ path: '/moved', hash: movedHash, size: moved.length }],
  );
  const rootHash = await storeObject(directory, root, { suffix: 'C' });
  await publish(directory, FQRN, rootHash, root.length);
  repository = await Repository.open({
    fqrn: FQRN,
    location: { directory },
    publicKeys: PUBLIC_KEY,
    cache: { directory: join(workDir, 'cache'), maxBytes: 16 * 1024 * 1024 },
  });
});

after(async () => {
  repository?.close();
  await removeDir(workDir);
});

test('entries of a catalog stored under another root prefix are shown at, and numbered by, their mounted paths', async () => {
  const moved = await repository.lookup('/moved/file.txt');
  const original = await repository.lookup('/original/file.txt');
  assert.equal(moved.path, '/moved/file.txt');
  assert.equal(moved.catalogMountpoint, '/moved');
  assert.deepEqual(await repository.readFile('/moved/file.txt'), await repository.readFile('/original/file.txt'));
  // Two paths, two inodes, although the stored rows hash the same path.
  assert.notEqual(moved.inode, original.inode);
  const [listed] = await repository.readdir('/moved');
  assert.equal(listed?.path, '/moved/file.txt');
  assert.equal(listed?.inode, moved.inode);
});
