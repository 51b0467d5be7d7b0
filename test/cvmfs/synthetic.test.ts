// Features the real-tools fixture does not exercise, on a repository built by repo-builder.ts:
// chunked files, xattrs, RMD160 / SHAKE128 hashes, uncompressed objects, hardlink groups,
// variant symlinks, hidden entries and nested catalogs two levels deep.
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RepositoryFuseView } from '../../src/core/cvmfs/fuse-view.ts';
import { objectPath } from '../../src/core/cvmfs/hash.ts';
import { Repository } from '../../src/core/cvmfs/repository.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { flipByte, makeTempDir, PUBLIC_KEY, removeDir } from './fixture.ts';
import { buildSyntheticRepository, type SyntheticRepository } from './repo-builder.ts';

let workDir: string;
let synthetic: SyntheticRepository;
let nginx: NginxServer;
let repository: Repository;
let cacheCount = 0;

const openOver = (location: 'directory' | 'http', environment?: Record<string, string>) =>
  Repository.open({
    fqrn: synthetic.fqrn,
    location: location === 'directory' ? { directory: synthetic.directory } : { serverUrls: `${nginx.baseUrl}/cvmfs/@fqrn@` },
    publicKeys: PUBLIC_KEY,
    cache: { directory: join(workDir, `cache-${cacheCount++}`), maxBytes: 16 * 1024 * 1024 },
    symlinkEnvironment: environment ?? {},
  });

before(async () => {
  workDir = await makeTempDir('synthetic');
  synthetic = await buildSyntheticRepository(workDir);
  nginx = await startNginx({ [synthetic.fqrn]: synthetic.directory });
  repository = await openOver('directory');
});

after(async () => {
  repository?.close();
  await nginx?.stop();
  await removeDir(workDir);
});

describe('synthetic repository', () => {
  test('every regular file reads back exactly, whatever its hash algorithm or compression', async () => {
    for (const [path, content] of Object.entries(synthetic.files)) {
      assert.deepEqual(await repository.readFile(path), content, path);
    }
    assert.equal((await repository.lookup('/rmd160.txt')).contentHash?.algorithm, 'rmd160');
    assert.equal((await repository.lookup('/uncompressed.txt')).compression, 'none');
  });

  test('a chunked file reads correctly across and inside chunk boundaries', async () => {
    const entry = await repository.lookup(synthetic.chunkedPath);
    assert.equal(entry.chunked, true);
    assert.equal(entry.contentHash, null);
    const content = synthetic.files[synthetic.chunkedPath]!;
    for (const [offset, length] of [[0, 5000], [0, 1], [1199, 2], [1200, 1800], [2999, 2], [1100, 2500], [4990, 100], [5000, 1]] as const) {
      assert.deepEqual(await repository.read(entry, offset, length), content.subarray(offset, offset + length), `offset ${offset} length ${length}`);
    }
  });

  test('readInto fills a given buffer across chunk boundaries and says how much, fewer bytes only at the end', async () => {
    const chunked = await repository.lookup(synthetic.chunkedPath);
    const content = synthetic.files[synthetic.chunkedPath]!;
    const buffer = Buffer.alloc(2000, 0xee);
    for (const offset of [0, 1100, 3500, 4990, 5000, 6000]) {
      const expected = content.subarray(offset, offset + buffer.length);
      assert.equal(await repository.readInto(chunked, offset, buffer), expected.length, `offset ${offset}`);
      assert.deepEqual(buffer.subarray(0, expected.length), expected, `offset ${offset}`);
    }
    const [path, small] = Object.entries(synthetic.files).find(([name]) => name !== synthetic.chunkedPath)!;
    buffer.fill(0xee);
    assert.equal(await repository.readInto(path, 1, buffer), small.length - 1);
    assert.deepEqual(buffer.subarray(0, small.length - 1), small.subarray(1));
    assert.equal(buffer[small.length - 1], 0xee, 'nothing written past the file');
    await assert.rejects(repository.readInto(path, -1, buffer), /invalid read range/);
  });

  test('a ranged read of a chunked file over HTTP fetches only the overlapping chunks', async () => {
    const remote = await openOver('http');
    try {
      const entry = await remote.lookup(synthetic.chunkedPath);
      const chunkUrls = synthetic.chunks.map((chunk) => `/cvmfs/${synthetic.fqrn}/${objectPath(chunk.hash, 'P')}`);
      const fetchedDuring = async (read: () => Promise<unknown>) => {
        const seen = (await nginx.accessLog()).length;
        await read();
        return (await nginx.accessLog()).slice(seen).map((line) => line.path);
      };
      assert.deepEqual(await fetchedDuring(() => remote.read(entry, 1300, 100)), [chunkUrls[1]]);
      assert.deepEqual((await fetchedDuring(() => remote.read(entry, 1100, 2000))).sort(), [chunkUrls[0], chunkUrls[2]].sort());
      assert.deepEqual(await fetchedDuring(() => remote.read(entry, 0, 5000)), [], 'all chunks are cached now');
    } finally {
      remote.close();
    }
  });

  test('extended attributes are listed and read', async () => {
    assert.deepEqual(await repository.listxattr('/xattrs.txt'), ['user.binary', 'user.comment']);
    assert.deepEqual(await repository.getxattr('/xattrs.txt', 'user.binary'), Buffer.from([0, 1, 2, 255]));
    assert.equal((await repository.getxattr('/xattrs.txt', 'user.comment')).toString(), 'hello');
    await assert.rejects(repository.getxattr('/xattrs.txt', 'user.none'), { code: 'no-such-xattr' });
  });

  test('a lookup table says which entries have extended attributes', async () => {
    const view = await RepositoryFuseView.create(repository, { imageLayers: false });
    const table = await view.lookupTable(view.rootIno, 100);
    assert.ok(table !== null);
    const withXattrs = [...table.entries].filter(([, entry]) => entry.xattrs).map(([name]) => name);
    assert.deepEqual(withXattrs, ['xattrs.txt']);
  });

  test('members of a hardlink group share an inode and the link count', async () => {
    const a = await repository.lookup('/hardlink-a');
    const b = await repository.lookup('/hardlink-b');
    assert.equal(a.inode, b.inode);
    assert.equal(a.nlink, 2);
    assert.equal(a.hardlinkGroup, 1);
    assert.notEqual(a.inode, (await repository.lookup('/xattrs.txt')).inode);
  });

  test('variant symlinks are expanded from the given environment, with defaults', async () => {
    assert.equal(await repository.readlink('/variant'), '/opt/generic/lib');
    assert.equal((await repository.lookup('/variant')).size, '/opt/generic/lib'.length);
    const withArch = await openOver('directory', { SYNTHETIC_ARCH: 'x86_64' });
    try {
      assert.equal(await withArch.readlink('/variant'), '/opt/x86_64/lib');
    } finally {
      withArch.close();
    }
  });

  test('hidden entries are left out of listings but can be looked up', async () => {
    const names = (await repository.readdir('/')).map((entry) => entry.name);
    assert.deepEqual(names, ['chunked.bin', 'hardlink-a', 'hardlink-b', 'nested', 'rmd160.txt', 'uncompressed.txt', 'variant', 'xattrs.txt']);
    assert.equal((await repository.lookup('/.hidden')).type, 'dir');
    // Asked for, they are listed too (a lookup table must know every name lookup finds).
    const all = (await repository.readdir('/', { hidden: true })).map((entry) => entry.name);
    assert.deepEqual(all, ['.hidden', ...names]);
    assert.equal(await repository.countEntries('/'), all.length);
  });

  test('nested catalogs two levels deep are attached on demand', async () => {
    const leaf = await repository.lookup('/nested/deeper/leaf.txt');
    assert.equal(leaf.catalogMountpoint, '/nested/deeper');
    const deeper = await repository.lookup('/nested/deeper');
    assert.equal(deeper.catalogMountpoint, '/nested');
    assert.equal(deeper.nestedCatalogMountpoint, true);
    assert.deepEqual((await repository.readdir('/nested/deeper')).map((entry) => entry.name), ['leaf.txt']);
    assert.deepEqual((await repository.readdir('/nested')).map((entry) => entry.name), ['deeper', 'file.txt']);
  });

  test('a local file holds exactly what a file reads: its object, or a chunked file put together once', async () => {
    await repository.readFile(synthetic.chunkedPath);
    for (const [path, content] of Object.entries(synthetic.files)) {
      assert.deepEqual(await readFile((await repository.localFile(path))!), content, path);
    }
    const whole = (await repository.localFile(synthetic.chunkedPath))!;
    assert.match(whole, /\.whole$/, 'kept apart from objects');
    const { mtimeMs } = await stat(whole);
    assert.equal(await repository.localFile(synthetic.chunkedPath), whole, 'put together once');
    assert.equal((await stat(whole)).mtimeMs, mtimeMs);
    await assert.rejects(repository.localFile('/nested'), (error: Error & { code?: string }) => error.code === 'is-a-directory');
  });

  test('a chunked file gets a local file only once all its chunks are cached: none is fetched for it', async () => {
    const fresh = await openOver('http');
    try {
      const fetched = async () => (await nginx.accessLog()).filter((entry) => entry.path.endsWith('P')).length;
      const before = await fetched();
      assert.equal(await fresh.localFile(synthetic.chunkedPath), null);
      assert.equal(await fetched(), before, 'no chunk fetched');
      await fresh.read(synthetic.chunkedPath, 0, 100);
      assert.equal(await fresh.localFile(synthetic.chunkedPath), null, 'one chunk of three cached');
      await fresh.readFile(synthetic.chunkedPath);
      assert.deepEqual(await readFile((await fresh.localFile(synthetic.chunkedPath))!), synthetic.files[synthetic.chunkedPath]);
    } finally {
      fresh.close();
    }
  });

  test('asked for a cached local file only, nothing is fetched or put together', async () => {
    const fresh = await openOver('http');
    try {
      const requests = async () => (await nginx.accessLog()).length;
      const path = Object.keys(synthetic.files).find((file) => file !== synthetic.chunkedPath && synthetic.files[file]!.length > 0)!;
      const before = await requests();
      assert.equal(await fresh.localFile(path, { cachedOnly: true }), null);
      assert.equal(await fresh.localFile(synthetic.chunkedPath, { cachedOnly: true }), null);
      assert.equal(await requests(), before, 'nothing fetched');
      const fetched = await fresh.localFile(path);
      assert.equal(await fresh.localFile(path, { cachedOnly: true }), fetched);
      // All chunks cached, but not put together yet: that is left to an open.
      await fresh.readFile(synthetic.chunkedPath);
      assert.equal(await fresh.localFile(synthetic.chunkedPath, { cachedOnly: true }), null);
      const whole = await fresh.localFile(synthetic.chunkedPath);
      assert.equal(await fresh.localFile(synthetic.chunkedPath, { cachedOnly: true }), whole);
    } finally {
      fresh.close();
    }
  });

  test('a damaged chunk fails only the reads that need it, and never returns its bytes', async () => {
    const damaged = await makeTempDir('synthetic-damaged');
    try {
      const copy = await buildSyntheticRepository(damaged);
      await flipByte(join(copy.directory, objectPath(copy.chunks[1]!.hash, 'P')), 10);
      const reader = await Repository.open({
        fqrn: copy.fqrn,
        location: { directory: copy.directory },
        publicKeys: PUBLIC_KEY,
        cache: { directory: join(damaged, 'cache'), maxBytes: 1 << 24 },
      });
      try {
        const content = copy.files[copy.chunkedPath]!;
        assert.deepEqual(await reader.read(copy.chunkedPath, 0, 1000), content.subarray(0, 1000));
        await assert.rejects(reader.read(copy.chunkedPath, 1000, 500), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'bad-data');
          assert.match(error.message, new RegExp(objectPath(copy.chunks[1]!.hash, 'P')));
          return true;
        });
        assert.deepEqual(await reader.read(copy.chunkedPath, 3000, 2000), content.subarray(3000));
        assert.equal(await reader.localFile(copy.chunkedPath), null, 'the damaged chunk never reached the cache');
        const kept = await readdir(join(damaged, 'cache', 'data'), { recursive: true });
        assert.deepEqual(kept.filter((name) => name.endsWith('.whole')), [], 'nothing put together from a damaged chunk');
        assert.deepEqual(await readdir(join(damaged, 'cache', 'txn')), [], 'nor left half-written');
      } finally {
        reader.close();
      }
    } finally {
      await removeDir(damaged);
    }
  });
});
