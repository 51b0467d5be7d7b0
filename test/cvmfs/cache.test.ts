// The shared object cache: atomic stores, LRU eviction under a size bound, several processes
// at once, and the per-repository breadcrumb.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { advanceBreadcrumb, checkNotOlder, readBreadcrumb } from '../../src/core/cvmfs/breadcrumb.ts';
import { ObjectCache } from '../../src/core/cvmfs/cache.ts';
import { parseContentHash } from '../../src/core/cvmfs/hash.ts';
import { loadExpected, makeTempDir, removeDir, REPOSITORY_DIR } from './fixture.ts';

const WORKER = fileURLToPath(new URL('./cache-worker.ts', import.meta.url));

let workDir: string;
let count = 0;
before(async () => {
  workDir = await makeTempDir('cache');
});
after(() => removeDir(workDir));

const freshDirectory = () => join(workDir, `cache-${count++}`);
const keyOf = (index: number) => createHash('sha1').update(String(index)).digest('hex');

/** Bytes and names of all objects on disk. */
async function onDisk(directory: string): Promise<{ bytes: number; keys: string[] }> {
  let bytes = 0;
  const keys: string[] = [];
  for (const prefix of await readdir(join(directory, 'data'))) {
    for (const name of await readdir(join(directory, 'data', prefix))) {
      bytes += (await stat(join(directory, 'data', prefix, name))).size;
      keys.push(prefix + name);
    }
  }
  return { bytes, keys };
}

describe('object cache', () => {
  test('a failed store leaves neither the object nor a temp file', async () => {
    const directory = freshDirectory();
    const cache = await ObjectCache.open({ directory, maxBytes: 1 << 20 });
    try {
      await assert.rejects(
        cache.store(keyOf(1), async (temp) => {
          await writeFile(temp, 'partial');
          throw new Error('download broke off');
        }),
        /download broke off/,
      );
      assert.equal(await cache.find(keyOf(1)), null);
      assert.deepEqual(await readdir(join(directory, 'txn')), []);
      const path = await cache.store(keyOf(1), (temp) => writeFile(temp, 'complete'));
      assert.equal(await readFile(path, 'utf8'), 'complete');
      assert.equal(await cache.find(keyOf(1)), path);
    } finally {
      cache.close();
    }
  });

  test('eviction keeps the cache under its bound and drops least recently used objects first', async () => {
    const directory = freshDirectory();
    const cache = await ObjectCache.open({ directory, maxBytes: 10_000, accessRecordIntervalMs: 0 });
    try {
      for (let i = 0; i < 10; i++) await cache.store(keyOf(i), (temp) => writeFile(temp, Buffer.alloc(1000, i)));
      assert.equal(cache.totalBytes(), 10_000);
      // Touch the two oldest, so they become the most recently used.
      assert.notEqual(await cache.find(keyOf(0)), null);
      assert.notEqual(await cache.find(keyOf(1)), null);
      await cache.store(keyOf(10), (temp) => writeFile(temp, Buffer.alloc(1000, 10)));
      assert.ok(cache.totalBytes() <= 10_000 * 0.75, `ledger says ${cache.totalBytes()} bytes`);
      const { bytes, keys } = await onDisk(directory);
      assert.equal(bytes, cache.totalBytes());
      for (const kept of [0, 1, 10]) assert.ok(keys.includes(keyOf(kept)), `object ${kept} was recently used and must stay`);
      for (const evicted of [2, 3, 4]) assert.ok(!keys.includes(keyOf(evicted)), `object ${evicted} was least recently used`);
    } finally {
      cache.close();
    }
  });

  test('accesses not yet written to the ledger are written when the cache is closed', async () => {
    const directory = freshDirectory();
    const first = await ObjectCache.open({ directory, maxBytes: 10_000, accessRecordIntervalMs: 0 });
    for (let i = 0; i < 10; i++) await first.store(keyOf(i), (temp) => writeFile(temp, Buffer.alloc(1000, i)));
    assert.notEqual(await first.find(keyOf(0)), null);
    assert.notEqual(await first.find(keyOf(1)), null);
    first.close();
    const second = await ObjectCache.open({ directory, maxBytes: 10_000 });
    try {
      await second.store(keyOf(10), (temp) => writeFile(temp, Buffer.alloc(1000, 10)));
      const { keys } = await onDisk(directory);
      for (const kept of [0, 1, 10]) assert.ok(keys.includes(keyOf(kept)), `object ${kept} was recently used and must stay`);
      assert.ok(!keys.includes(keyOf(2)), 'object 2 was least recently used');
    } finally {
      second.close();
    }
  });

  test('eviction tolerates objects that another process already removed', async () => {
    const directory = freshDirectory();
    const cache = await ObjectCache.open({ directory, maxBytes: 5_000 });
    try {
      for (let i = 0; i < 5; i++) await cache.store(keyOf(i), (temp) => writeFile(temp, Buffer.alloc(1000)));
      await rm(cache.pathOf(keyOf(0)));
      await rm(cache.pathOf(keyOf(1)));
      await cache.store(keyOf(5), (temp) => writeFile(temp, Buffer.alloc(1000)));
      assert.ok(cache.totalBytes() <= 5_000);
      assert.equal(await cache.find(keyOf(0)), null);
      assert.notEqual(await cache.find(keyOf(5)), null);
    } finally {
      cache.close();
    }
  });

  test('an object larger than the bound is kept while it is the one being used', async () => {
    const directory = freshDirectory();
    const cache = await ObjectCache.open({ directory, maxBytes: 1_000 });
    try {
      await cache.store(keyOf(1), (temp) => writeFile(temp, Buffer.alloc(500)));
      const path = await cache.store(keyOf(2), (temp) => writeFile(temp, Buffer.alloc(2_000)));
      assert.equal((await stat(path)).size, 2_000);
      assert.equal(await cache.find(keyOf(1)), null);
    } finally {
      cache.close();
    }
  });

  test('several processes sharing one small cache never see partial or wrong objects', async () => {
    const directory = freshDirectory();
    const maxBytes = 60_000;
    const runs = await Promise.all([1, 2, 3, 4].map((seed) => runWorker(['objects', directory, String(maxBytes), `worker${seed}`])));
    for (const run of runs) assert.ok(run.checked > 0);
    const cache = await ObjectCache.open({ directory, maxBytes });
    try {
      const { bytes, keys } = await onDisk(directory);
      assert.ok(bytes <= maxBytes, `${bytes} bytes on disk exceed the ${maxBytes}-byte bound`);
      assert.ok(cache.totalBytes() <= maxBytes);
      for (const key of keys) {
        const data = await readFile(cache.pathOf(key));
        assert.equal(createHash('sha1').update(data).digest('hex'), key, `object ${key} is damaged`);
      }
      assert.deepEqual(await readdir(join(directory, 'txn')), []);
    } finally {
      cache.close();
    }
  });

  test('several processes reading one repository through a cache smaller than it all get right bytes', async () => {
    const directory = freshDirectory();
    // The repository's objects take about 3.3 MB decompressed; the 3 MiB file alone fills most of this.
    const maxBytes = 3_300_000;
    const runs = await Promise.all([1, 2, 3].map(() => runWorker(['repository', directory, String(maxBytes), REPOSITORY_DIR])));
    const files = Object.values((await loadExpected()).entries).filter((entry) => entry.type === 'file').length;
    for (const run of runs) assert.equal(run.checked, files);
    assert.ok((await onDisk(directory)).bytes <= maxBytes);
  });
});

describe('breadcrumb', () => {
  test('records the newest revision and refuses older ones', async () => {
    const directory = freshDirectory();
    const hash = parseContentHash('0a27c338542cc7af250a3dbe579a04545b8684db');
    assert.equal(await readBreadcrumb(directory, 'x.test'), null);
    await mkdir(directory, { recursive: true });
    await advanceBreadcrumb(directory, 'x.test', { rootCatalog: hash, revision: 5, publishedAt: 1000 });
    await advanceBreadcrumb(directory, 'x.test', { rootCatalog: hash, revision: 4, publishedAt: 900 });
    const crumb = await readBreadcrumb(directory, 'x.test');
    assert.deepEqual(crumb, { rootCatalog: hash, revision: 5, publishedAt: 1000 });
    assert.equal(await readFile(join(directory, 'cvmfschecksum.x.test'), 'utf8'), '0a27c338542cc7af250a3dbe579a04545b8684dbT1000R5');
    assert.throws(() => checkNotOlder(crumb, { rootCatalog: hash, revision: 4, publishedAt: 1000 }, 'x.test', 'here'), { code: 'outdated' });
    assert.throws(() => checkNotOlder(crumb, { rootCatalog: hash, revision: 5, publishedAt: 999 }, 'x.test', 'here'), { code: 'outdated' });
    checkNotOlder(crumb, { rootCatalog: hash, revision: 5, publishedAt: 1000 }, 'x.test', 'here');
  });
});

function runWorker(args: string[]): Promise<{ checked: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`worker ${args.join(' ')} failed (${code}):\n${err}`))));
  });
}
