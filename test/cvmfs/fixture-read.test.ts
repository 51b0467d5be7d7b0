// Reads every path of the real-tools fixture repository, from its directory and over a real
// nginx, and compares with what the real cvmfs client showed (expected.json).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { formatContentHash, objectPath } from '../../src/core/cvmfs/hash.ts';
import { Repository, type RepositoryLocation } from '../../src/core/cvmfs/repository.ts';
import type { Entry } from '../../src/core/cvmfs/entry.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { FQRN, loadExpected, makeTempDir, PUBLIC_KEY, removeDir, REPOSITORY_DIR, type Expected, type ExpectedEntry } from './fixture.ts';

const LAYER1 = '/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs';
const LAYER2 = '/.layers/35/3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931/layerfs';
const RANDOM_FILE = `${LAYER1}/data/random-3MiB.bin`;

// The FUSE kernel module shows ids it cannot map, such as (uid_t)-1, as the overflow id 65534.
const kernelId = (id: number) => (id === 4294967295 ? 65534 : id);

/** The entry in expected.json's shape, so whole records compare at once. */
async function describeEntry(repository: Repository, entry: Entry): Promise<ExpectedEntry> {
  const content = entry.type === 'file' ? await repository.readFile(entry.path) : null;
  return {
    type: entry.type,
    mode: entry.mode,
    modeOctal: entry.mode.toString(8),
    size: entry.catalogSize,
    uid: entry.uid,
    gid: entry.gid,
    mtime: entry.mtime,
    mtimeNs: entry.mtimeNs,
    symlink: entry.symlink,
    sha1: content === null ? null : createHash('sha1').update(content).digest('hex'),
    contentHash: entry.contentHash === null ? null : formatContentHash(entry.contentHash),
    objectPath: entry.contentHash === null ? null : objectPath(entry.contentHash, ''),
    hardlinkGroup: entry.hardlinkGroup,
    linkcount: entry.nlink,
    flags: entry.flags,
    catalog: entry.catalogMountpoint,
    nestedCatalogMountpoint: entry.nestedCatalogMountpoint,
    rdev: entry.rdev,
    xattrs: entry.xattrs === null ? null : Object.fromEntries([...entry.xattrs].map(([key, value]) => [key, value.toString()])),
    chunks: entry.chunked ? [] : null,
    stat: {
      mode: entry.mode,
      size: entry.size,
      nlink: entry.nlink,
      uid: kernelId(entry.uid),
      gid: kernelId(entry.gid),
      mtime: entry.mtime,
      mtimeNs: entry.mtimeNs ?? 0,
    },
  };
}

/** The 3 MiB file of layer 1: sha256("fixture.cvmfs.test/random-3MiB" ‖ uint64_be(i)) for i = 0, 1, … */
function randomFileBytes(): Buffer {
  const blocks = [];
  for (let i = 0n; blocks.length * 32 < 3 * 1024 * 1024; i++) {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(i);
    blocks.push(createHash('sha256').update('fixture.cvmfs.test/random-3MiB').update(counter).digest());
  }
  return Buffer.concat(blocks);
}

async function walk(repository: Repository, path: string, into: Map<string, Entry>): Promise<void> {
  for (const entry of await repository.readdir(path)) {
    into.set(entry.path, entry);
    if (entry.type === 'dir') await walk(repository, entry.path, into);
  }
}

let expected: Expected;
let nginx: NginxServer;
let workDir: string;

before(async () => {
  expected = await loadExpected();
  nginx = await startNginx({ [FQRN]: REPOSITORY_DIR });
  workDir = await makeTempDir('fixture-read');
});

after(async () => {
  await nginx?.stop();
  await removeDir(workDir);
});

const locations: Record<string, () => RepositoryLocation> = {
  directory: () => ({ directory: REPOSITORY_DIR }),
  http: () => ({ serverUrls: `${nginx.baseUrl}/cvmfs/@fqrn@` }),
};

for (const [name, location] of Object.entries(locations)) {
  describe(`fixture repository read from ${name}`, () => {
    let repository: Repository;
    before(async () => {
      repository = await Repository.open({
        fqrn: FQRN,
        location: location(),
        publicKeys: PUBLIC_KEY,
        cache: { directory: `${workDir}/${name}-cache`, maxBytes: 64 * 1024 * 1024 },
      });
    });
    after(() => repository?.close());

    test('the manifest is the one the tools signed', () => {
      assert.equal(repository.revision, Number(expected.manifest.fields.S));
      assert.equal(repository.rootCatalogHash, expected.manifest.fields.C);
      assert.deepEqual(repository.manifest.fields, expected.manifest.fields);
    });

    test('listing from / reaches exactly the expected paths', async () => {
      const found = new Map<string, Entry>([['/', await repository.lookup('/')]]);
      await walk(repository, '/', found);
      assert.deepEqual([...found.keys()].sort(), Object.keys(expected.entries).sort());
    });

    test('every path looks and reads as the real client showed it', async () => {
      for (const [path, want] of Object.entries(expected.entries)) {
        const entry = await repository.lookup(path);
        assert.deepEqual(await describeEntry(repository, entry), { ...want, chunks: want.chunks === null ? null : [] }, path);
      }
    });

    test('readlink gives the stored targets; non-links are refused', async () => {
      assert.equal(await repository.readlink(`${LAYER1}/links/rel-link`), '../deep/level2/level3/level4/leaf.txt');
      await assert.rejects(repository.readlink(`${LAYER1}/README.txt`), { code: 'not-a-symlink' });
    });

    test('ranged reads of the 3 MiB object return the right bytes', async () => {
      const whole = randomFileBytes().subarray(0, 3 * 1024 * 1024);
      for (const [offset, length] of [[0, 1], [0, 4096], [1_000_003, 65_536], [3 * 1024 * 1024 - 10, 100], [3 * 1024 * 1024, 10], [17, 0]] as const) {
        const got = await repository.read(RANDOM_FILE, offset, length);
        assert.deepEqual(got, whole.subarray(offset, Math.min(offset + length, whole.length)), `offset ${offset} length ${length}`);
      }
      await assert.rejects(repository.read(RANDOM_FILE, -1, 10), { code: 'invalid-argument' });
    });

    test('a local file: the cached object of the 3 MiB file, none for an empty file', async () => {
      assert.deepEqual(await readFile((await repository.localFile(RANDOM_FILE))!), randomFileBytes().subarray(0, 3 * 1024 * 1024));
      assert.equal(await repository.localFile(`${LAYER1}/empty-file`), null);
    });

    test('paths that do not exist, and non-directories, are reported as such', async () => {
      await assert.rejects(repository.lookup(`${LAYER1}/no-such-file`), { code: 'not-found' });
      await assert.rejects(repository.lookup(`${LAYER2}/nope/deeper`), { code: 'not-found' });
      await assert.rejects(repository.readdir(`${LAYER1}/README.txt`), { code: 'not-a-directory' });
      await assert.rejects(repository.lookup(`${LAYER1}/README.txt/child`), { code: 'not-a-directory' });
      await assert.rejects(repository.read(`${LAYER1}/deep`, 0, 1), { code: 'is-a-directory' });
      await assert.rejects(repository.getxattr(`${LAYER1}/README.txt`, 'user.x'), { code: 'no-such-xattr' });
      assert.deepEqual(await repository.listxattr(`${LAYER1}/README.txt`), []);
    });

    test('the mountpoint row comes from the parent catalog, its listing from the nested one', async () => {
      const mountpoint = await repository.lookup(LAYER2);
      assert.equal(mountpoint.catalogMountpoint, '/');
      assert.equal(mountpoint.nestedCatalogMountpoint, true);
      const children = await repository.readdir(LAYER2);
      assert.deepEqual(children.map((child) => child.name), ['.cvmfscatalog', '.wh.removed', 'README.txt', 'bin', 'etc', 'same-as-layer1-hl-one']);
      assert.ok(children.every((child) => child.catalogMountpoint === LAYER2));
      // Asked again after the nested catalog is attached, the answer is still the parent's row.
      assert.deepEqual(await repository.lookup(LAYER2), mountpoint);
    });

    test('equal hardlink copies keep separate inodes, paths keep stable inodes', async () => {
      const one = await repository.lookup(`${LAYER1}/hardlinks/hl-one`);
      const two = await repository.lookup(`${LAYER1}/hardlinks/hl-two`);
      assert.notEqual(one.inode, two.inode);
      assert.equal((await repository.lookup(`${LAYER1}/hardlinks/hl-one/`)).inode, one.inode);
    });
  });
}

describe('what reading over HTTP fetches', () => {
  test('one small file costs its object plus the catalogs on its path, once', async () => {
    const cache = `${workDir}/counting-cache`;
    const options = { fqrn: FQRN, location: locations.http!(), publicKeys: PUBLIC_KEY, cache: { directory: cache, maxBytes: 64 * 1024 * 1024 } };
    const catalogs = new Map(expected.catalogs.map((catalog) => [catalog.mountpoint, `/cvmfs/${FQRN}/${catalog.objectPath}`]));
    const requested = async (since: number) => (await nginx.accessLog()).slice(since).map((entry) => `${entry.status} ${entry.path}`);

    let seen = (await nginx.accessLog()).length;
    const repository = await Repository.open(options);
    try {
      assert.deepEqual(await requested(seen), [
        `200 /cvmfs/${FQRN}/.cvmfspublished`,
        `200 /cvmfs/${FQRN}/data/61/a2012763ec4efb8fdaa607b8e31b9902642c0aX`,
        `200 /cvmfs/${FQRN}/.cvmfswhitelist`,
        `200 ${catalogs.get('/')}`,
      ]);

      seen = (await nginx.accessLog()).length;
      const file = `${LAYER2}/etc/config.ini`;
      const content = await repository.readFile(file);
      assert.equal(createHash('sha1').update(content).digest('hex'), expected.entries[file]!.sha1);
      assert.deepEqual(await requested(seen), [`200 ${catalogs.get(LAYER2)}`, `200 /cvmfs/${FQRN}/${expected.entries[file]!.objectPath}`]);

      seen = (await nginx.accessLog()).length;
      await repository.readFile(file);
      await repository.readdir(LAYER2);
      assert.deepEqual(await requested(seen), [], 'cached objects and attached catalogs are not fetched again');
    } finally {
      repository.close();
    }

    // A second client on the same cache only re-checks the signed files.
    seen = (await nginx.accessLog()).length;
    const again = await Repository.open(options);
    again.close();
    assert.deepEqual(await requested(seen), [`200 /cvmfs/${FQRN}/.cvmfspublished`, `200 /cvmfs/${FQRN}/.cvmfswhitelist`]);
  });
});
