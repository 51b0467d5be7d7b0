// The worker threads that store file contents: their objects are the very bytes, names and
// counts ObjectStore.put gives (for every hash algorithm, small and large contents, copied or
// handed over), present objects are not rewritten, and a failure is reported per object and
// leaves neither an object nor a temp file behind.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HASH_ALGORITHMS, objectPath, type ContentHash, type ObjectSuffix } from '../../src/core/cvmfs/hash.ts';
import { ObjectStore } from '../../src/core/cvmfs/publish/object-store.ts';
import { ObjectWriters } from '../../src/core/cvmfs/publish/object-writers.ts';
import { makeTempDir, removeDir } from '../cvmfs/fixture.ts';
import { pseudoRandom } from './helpers.ts';

const CONTENTS: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['text', Buffer.from('#include <stdio.h>\n'.repeat(40))],
  ['random 100 KB', pseudoRandom(100_000, 'small')],
  ['compressible 300 KB', Buffer.from('0123456789abcdef'.repeat(20_000))],
  ['random 3 MB, larger than a batch', pseudoRandom(3_000_000, 'large')],
];

let workDir: string;

before(async () => {
  workDir = await makeTempDir('object-writers');
});
after(() => removeDir(workDir));

/** A store on its own storage and temp directories below `name`. */
async function newStore(name: string, algorithm: ObjectStore['algorithm']): Promise<ObjectStore> {
  const storage = join(workDir, name, 'storage');
  const temp = join(workDir, name, 'txn');
  await mkdir(join(storage, 'data'), { recursive: true });
  await mkdir(temp, { recursive: true });
  return new ObjectStore(storage, temp, algorithm);
}

async function filesBelow(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

describe('object writer threads', () => {
  for (const algorithm of HASH_ALGORITHMS) {
    test(`write the objects ObjectStore.put writes, with ${algorithm}`, async () => {
      const reference = await newStore(`reference-${algorithm}`, algorithm);
      const threaded = await newStore(`threads-${algorithm}`, algorithm);
      const writers = new ObjectWriters(threaded, 2);
      try {
        for (const suffix of ['', 'P'] as ObjectSuffix[]) {
          // All at once, so that they share batches; split into parts as a tar delivers them.
          const hashes = await Promise.all(CONTENTS.map(([, data]) => writers.put([data.subarray(0, 7), data.subarray(7)], data.length, suffix)));
          for (const [index, [label, data]] of CONTENTS.entries()) {
            const expected = await reference.put(data, suffix);
            assert.deepEqual(hashes[index], expected, label);
            const path = objectPath(expected, suffix);
            assert.ok((await readFile(join(threaded.storage, path))).equals(await readFile(join(reference.storage, path))), `${label}: same bytes`);
          }
        }
        assert.equal(threaded.objectsWritten, reference.objectsWritten);
        assert.equal(threaded.bytesWritten, reference.bytesWritten);
      } finally {
        await writers.close();
      }
      assert.deepEqual(await filesBelow(threaded.tempDir), [], 'no temp file is left');
    });
  }

  test('a buffer handed over is stored the same, and emptied without a copy', async () => {
    const store = await newStore('handed-over', 'sha1');
    const writers = new ObjectWriters(store, 1);
    try {
      const data = pseudoRandom(2_500_000, 'handed over');
      const expected = await store.put(data, 'P');
      const owned = Buffer.concat([data]);
      const hash = await writers.putBuffer(owned, 'P');
      assert.deepEqual(hash, expected);
      assert.equal(owned.length, 0, 'the buffer went to the thread');
      const small = Buffer.from('not worth handing over');
      await writers.putBuffer(small, '');
      assert.equal(small.toString(), 'not worth handing over', 'a small buffer is copied');
    } finally {
      await writers.close();
    }
  });

  test('content already stored is not written again', async () => {
    const store = await newStore('present', 'sha1');
    const earlier = await store.put(Buffer.from('stored before'), '');
    const writers = new ObjectWriters(store, 2);
    let hashes: ContentHash[];
    try {
      const twice = Buffer.from('twice in one batch');
      hashes = await Promise.all([writers.put([Buffer.from('stored before')], 13, ''), writers.put([twice], twice.length, ''), writers.put([twice], twice.length, '')]);
    } finally {
      await writers.close();
    }
    assert.deepEqual(hashes[0], earlier);
    assert.deepEqual(hashes[1], hashes[2]);
    assert.equal(store.objectsWritten, 2, 'the earlier object and the new one, once');
  });

  test('close waits for the objects under way', async () => {
    const store = await newStore('close', 'sha1');
    const writers = new ObjectWriters(store, 2);
    const pending = CONTENTS.map(([, data]) => writers.put([data], data.length, ''));
    await writers.close();
    for (const hash of await Promise.all(pending)) await readFile(join(store.storage, objectPath(hash, '')));
  });

  test('an object that cannot be stored fails on its own, leaving no object and no temp file', async () => {
    const store = await newStore('failure', 'sha1');
    // A file where the data directories should be: every rename into data/XX/ fails.
    await rm(join(store.storage, 'data'), { recursive: true });
    await writeFile(join(store.storage, 'data'), 'not a directory');
    const writers = new ObjectWriters(store, 2);
    try {
      const outcomes = await Promise.allSettled(CONTENTS.map(([, data]) => writers.put([data], data.length, '')));
      for (const [index, outcome] of outcomes.entries()) {
        assert.equal(outcome.status, 'rejected', CONTENTS[index]![0]);
        const error = (outcome as PromiseRejectedResult).reason as NodeJS.ErrnoException;
        assert.match(error.message, /^cannot store an object in .*storage: ENOTDIR/);
        assert.equal(error.code, 'ENOTDIR');
      }
      assert.equal(store.objectsWritten, 0);
      assert.deepEqual(await filesBelow(store.tempDir), [], 'no temp file is left');
      assert.equal(await readFile(join(store.storage, 'data'), 'utf8'), 'not a directory');
      // The threads carry on once the storage is whole again.
      await rm(join(store.storage, 'data'));
      const [, data] = CONTENTS[1]!;
      const hash = await writers.put([data], data.length, '');
      await readFile(join(store.storage, objectPath(hash, '')));
    } finally {
      await writers.close();
    }
  });
});
