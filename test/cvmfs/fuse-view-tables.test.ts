// A directory's lookup table must say exactly what lookup says for every name, or the device
// reader, which answers lookups from it, would show another tree than the main thread does.
// Checked on every directory of the real-tools fixture, whose layers hold whiteouts, an opaque
// directory and catalog markers, both as plain repository and as image layers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RepositoryFuseView } from '../../src/core/cvmfs/fuse-view.ts';
import { Repository } from '../../src/core/cvmfs/repository.ts';
import { errno, FuseError } from '../../src/core/fuse/errors.ts';
import { FILE_TYPE, type Attr } from '../../src/core/fuse/filesystem.ts';
import { FQRN, makeTempDir, PUBLIC_KEY, removeDir, REPOSITORY_DIR } from './fixture.ts';

const UNLIMITED = Number.MAX_SAFE_INTEGER;

async function lookupOrMissing(view: RepositoryFuseView, parent: bigint, name: string): Promise<Attr | 'missing'> {
  try {
    return await view.lookup(parent, name);
  } catch (error) {
    if (error instanceof FuseError && error.errno === errno.ENOENT) return 'missing';
    throw error;
  }
}

let repository: Repository;
let workDir: string;

before(async () => {
  workDir = await makeTempDir('fuse-view-tables');
  repository = await Repository.open({
    fqrn: FQRN,
    location: { directory: REPOSITORY_DIR },
    publicKeys: PUBLIC_KEY,
    cache: { directory: `${workDir}/cache`, maxBytes: 64 * 1024 * 1024 },
  });
});

after(async () => {
  repository?.close();
  await removeDir(workDir);
});

for (const imageLayers of [false, true]) {
  describe(imageLayers ? 'as image layers' : 'as a plain repository', () => {
    test('every directory\'s table agrees with lookup on every name, and misses what lookup misses', async () => {
      const view = await RepositoryFuseView.create(repository, { imageLayers });
      const directories: { ino: bigint; path: string }[] = [{ ino: view.rootIno, path: '/' }];
      let names = 0;
      let whiteouts = 0;
      let withXattrs = 0;
      while (directories.length > 0) {
        const { ino, path } = directories.pop()!;
        const table = await view.lookupTable(ino, UNLIMITED);
        assert.ok(table !== null);
        for (const [name, { attr, xattrs, symlink }] of table.entries) {
          assert.deepEqual(await lookupOrMissing(view, ino, name), attr, `${path} ${name}`);
          // The reader answers xattr queries on entries said to have none: listxattr must agree.
          assert.equal(xattrs, (await view.listxattr(attr.ino)).length > 0, `${path} ${name} xattrs`);
          if (xattrs) withXattrs++;
          // The reader answers readlink of symlinks from the table.
          if ((attr.mode & FILE_TYPE.MASK) === FILE_TYPE.SYMLINK) assert.equal(symlink, await view.readlink(attr.ino), `${path} ${name} target`);
          else assert.equal(symlink, undefined);
          names++;
          if ((attr.mode & FILE_TYPE.MASK) === FILE_TYPE.CHAR_DEVICE && attr.rdev === 0) whiteouts++;
          if ((attr.mode & FILE_TYPE.MASK) === FILE_TYPE.DIRECTORY) directories.push({ ino: attr.ino, path: `${path === '/' ? '' : path}/${name}` });
        }
        // And listings: what readdir gives.
        assert.deepEqual(table.listing, await view.readdir(ino), `${path} listing`);
        // Stored names the table leaves out (markers, or nothing), and names that are nowhere.
        const stored = (await repository.readdir(path, { hidden: true })).map((entry) => entry.name);
        for (const name of [...stored, 'no-such-name', '.wh.no-such-name', '.wh..wh..opq', '.cvmfscatalog']) {
          if (!table.entries.has(name)) assert.equal(await lookupOrMissing(view, ino, name), 'missing', `${path} ${name}`);
        }
      }
      assert.ok(names > 20, `walked ${names} names`);
      // The fixture's files have none; its opaque directory has one as a layer.
      assert.equal(withXattrs, imageLayers ? 1 : 0);
      if (imageLayers) assert.ok(whiteouts > 0, 'the layers\' whiteouts are in the tables');
      else assert.equal(whiteouts, 0);
    });
  });
}

test('a directory with more names than asked for has no table', async () => {
  const view = await RepositoryFuseView.create(repository, { imageLayers: false });
  const layers = await view.lookup(view.rootIno, '.layers');
  const count = (await repository.readdir('/.layers', { hidden: true })).length;
  assert.ok(count > 1);
  assert.equal(await view.lookupTable(layers.ino, count - 1), null);
  assert.equal((await view.lookupTable(layers.ino, count))?.entries.size, count);
});
