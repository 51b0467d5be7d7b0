// File content: the xor32 chunker cuts where the real publisher cuts, large files are stored
// as chunk objects and read back intact, and content that is already stored is never written
// again, whether it comes twice in one tar or in a later layer.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { FLAGS } from '../../src/core/cvmfs/entry.ts';
import { objectPath } from '../../src/core/cvmfs/hash.ts';
import { checkRepository } from '../../src/core/cvmfs/publish/check.ts';
import { cutChunks, DEFAULT_CHUNK_SIZES, type ChunkSizes } from '../../src/core/cvmfs/publish/chunker.ts';
import { ingest } from '../../src/core/cvmfs/publish/ingest.ts';
import type { Publisher } from '../../src/core/cvmfs/publish/publisher.ts';
import { makeTempDir, removeDir } from '../cvmfs/fixture.ts';
import { makeHeader, writeArchive } from '../tar/helpers.ts';
import { newPublisher, objectsBySuffix, openPublished, pseudoRandom, sha1 } from './helpers.ts';

/** The detector written the plain way, one byte at a time, from the description in the format notes (§3). */
function referenceCuts(data: Buffer, sizes: ChunkSizes): number[] {
  const threshold = Math.floor(0xffffffff / sizes.averageSize);
  const cuts: number[] = [];
  let last = 0;
  while (data.length - last > 0) {
    let x = 0;
    let cut = Math.min(data.length, last + sizes.maxSize);
    for (let at = last + sizes.minSize - 32; at < Math.min(data.length, last + sizes.maxSize); at++) {
      x = ((x << 1) ^ data[at]!) >>> 0;
      const distance = ((x - 0x7fffffff) << 0) | 0;
      if (at >= last + sizes.minSize && Math.abs(distance) < threshold && distance !== -0x80000000) {
        cut = at;
        break;
      }
    }
    cuts.push(cut - last);
    last = cut;
  }
  return cuts;
}

async function pieces(data: Buffer, blockSize: number, sizes: ChunkSizes): Promise<Buffer[]> {
  const blocks = async function* () {
    for (let offset = 0; offset < data.length; offset += blockSize) yield data.subarray(offset, offset + blockSize);
  };
  const out: Buffer[] = [];
  for await (const piece of cutChunks(blocks(), sizes)) out.push(piece);
  return out;
}

describe('the xor32 chunker', () => {
  const sizes: ChunkSizes = { minSize: 2048, averageSize: 4096, maxSize: 8192 };
  const data = pseudoRandom(300_000, 'chunker');

  test('cuts where a byte-by-byte implementation cuts, however the input is split', async () => {
    const want = referenceCuts(data, sizes);
    assert.ok(want.length > 30);
    assert.ok(want.slice(0, -1).every((length) => length >= sizes.minSize && length <= sizes.maxSize));
    assert.ok(want.some((length) => length < sizes.maxSize), 'some cuts are content-defined');
    for (const blockSize of [1, 31, 1000, 4096, 65536, data.length]) {
      const got = await pieces(blockSize === 1 ? data.subarray(0, 40_000) : data, blockSize, sizes);
      const expected = blockSize === 1 ? referenceCuts(data.subarray(0, 40_000), sizes) : want;
      assert.deepEqual(got.map((piece) => piece.length), expected, `blocks of ${blockSize}`);
      assert.ok(Buffer.concat(got).equals(blockSize === 1 ? data.subarray(0, 40_000) : data));
    }
  });

  test('cuts identically after an insertion once the content lines up again', async () => {
    const shifted = Buffer.concat([Buffer.from('inserted'), data]);
    const original = (await pieces(data, 65536, sizes)).map(sha1);
    const after = (await pieces(shifted, 65536, sizes)).map(sha1);
    const shared = after.filter((hash) => original.includes(hash));
    assert.ok(shared.length >= original.length - 3, `${shared.length} of ${original.length} chunks survive an insertion at the start`);
  });
});

describe('large files and deduplication', () => {
  let workDir: string;
  let publisher: Publisher;
  const big = pseudoRandom(24 * 1024 * 1024, 'big file');
  const medium = pseudoRandom(DEFAULT_CHUNK_SIZES.minSize, 'exactly the minimum');

  before(async () => {
    workDir = await makeTempDir('publish-content');
    publisher = await newPublisher(workDir);
  });
  after(() => removeDir(workDir));

  const layer = () =>
    writeArchive([
      [makeHeader({ path: 'big.bin', size: big.length }), big],
      [makeHeader({ path: 'medium.bin', size: medium.length }), medium],
      [makeHeader({ path: 'copy-of-medium.bin', size: medium.length }), medium],
      [makeHeader({ path: 'small.txt', size: 6 }), Buffer.from('small\n')],
    ]);

  test('a file larger than the minimum chunk size is stored in chunks that read back intact', async () => {
    await ingest(publisher, { tar: Readable.from([await layer()]), baseDir: '/one', createCatalog: true });
    const repository = await openPublished(publisher, workDir);
    try {
      const entry = await repository.lookup('/one/big.bin');
      assert.equal(entry.chunked, true);
      assert.equal(entry.flags, FLAGS.file | FLAGS.chunked);
      assert.equal(entry.contentHash, null);
      assert.equal(sha1(await repository.readFile('/one/big.bin')), sha1(big));
      assert.ok((await repository.read(entry, 10_000_000, 100)).equals(big.subarray(10_000_000, 10_000_100)));
      const whole = await repository.lookup('/one/medium.bin');
      assert.equal(whole.chunked, false, 'a file of exactly the minimum size is stored whole');
      assert.equal(sha1(await repository.readFile('/one/medium.bin')), sha1(medium));
    } finally {
      repository.close();
    }
    const chunks = (await objectsBySuffix(publisher.paths.storage)).get('P')!;
    const expectedCuts = referenceCuts(big, DEFAULT_CHUNK_SIZES);
    assert.equal(chunks.size, expectedCuts.length);
    assert.ok(expectedCuts.length >= 2);
  });

  test('publishing the same content again writes no data object', async () => {
    const before = await objectsBySuffix(publisher.paths.storage);
    const smallObject = join(publisher.paths.storage, 'data', [...before.get('')!][0]!.slice(0, 2), [...before.get('')!][0]!.slice(2));
    const mtime = (await stat(smallObject)).mtimeMs;
    const result = await ingest(publisher, { tar: Readable.from([await layer()]), baseDir: '/two', createCatalog: true });
    const after = await objectsBySuffix(publisher.paths.storage);
    assert.deepEqual(after.get(''), before.get(''), 'no new whole-file objects');
    assert.deepEqual(after.get('P'), before.get('P'), 'no new chunk objects');
    assert.equal((await stat(smallObject)).mtimeMs, mtime, 'existing objects are not rewritten');
    // Root, the new nested catalog and the tag database: nothing else.
    assert.equal(result.objectsWritten, 3);
    assert.equal(after.get('C')!.size, before.get('C')!.size + 2);
  });

  test('with chunking off, a large file is one object, as cvmfs_server ingest stores it', async () => {
    await ingest(publisher, { tar: Readable.from([await layer()]), baseDir: '/three', chunking: null });
    const repository = await openPublished(publisher, workDir);
    try {
      const entry = await repository.lookup('/three/big.bin');
      assert.equal(entry.chunked, false);
      assert.equal(entry.flags, FLAGS.file);
      assert.ok((await stat(join(publisher.paths.storage, objectPath(entry.contentHash!, '')))).size > 0);
      assert.equal(sha1(await repository.readFile('/three/big.bin')), sha1(big));
    } finally {
      repository.close();
    }
    const report = await checkRepository({
      fqrn: publisher.config.fqrn,
      location: { directory: publisher.paths.storage },
      publicKeys: join(publisher.paths.keys, `${publisher.config.fqrn}.pub`),
    });
    assert.equal(report.catalogs, 3);
  });
});
