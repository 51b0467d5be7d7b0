// Archives the reader must refuse, each with an error that names the entry and the problem.

import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { readTar } from '../../src/core/tar/reader.ts';
import { run } from '../helpers/process.ts';
import { chunked, END_OF_ARCHIVE, makeHeader, makeTempDir, rawEntry, rawHeader, rawPax, readAll, writeArchive } from './helpers.ts';

async function archiveOf(t: Parameters<typeof makeTempDir>[0], format: string): Promise<Buffer> {
  const dir = await makeTempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  await writeFile(path.join(root, 'first.txt'), 'first\n');
  await writeFile(path.join(root, 'second.bin'), Buffer.alloc(5000, 1));
  await run('tar', [`--format=${format}`, '-cf', path.join(dir, 'a.tar'), '-C', root, 'first.txt', 'second.bin']);
  return readFile(path.join(dir, 'a.tar'));
}

test('a corrupted header fails the checksum, naming the entry', async (t) => {
  const archive = await archiveOf(t, 'gnu');
  const second = archive.indexOf('second.bin');
  archive[second + 124 + 5] ^= 1; // one bit of the size field
  await assert.rejects(readAll(chunked(archive, 4096)), /tar entry "second.bin" \(header at byte 1024\): header checksum mismatch/);
});

test('data that is not a tar archive is refused at the first header', async () => {
  await assert.rejects(readAll(chunked(Buffer.from('<html>not found</html>'.padEnd(2048, ' ')), 512)), /tar entry "<html>not found<\/html> {78}" \(header at byte 0\): header checksum mismatch/);
});

test('an archive cut inside a body is truncated, naming the entry', async (t) => {
  const archive = await archiveOf(t, 'posix');
  const second = archive.lastIndexOf('second.bin');
  const cut = archive.subarray(0, second + 512 + 3000);
  await assert.rejects(readAll(chunked(cut, 1000)), /tar entry "second.bin" .*archive truncated, 2000 bytes of data missing/);
  // Skipping the body instead of reading it finds the same problem.
  await assert.rejects(
    (async () => {
      for await (const entry of readTar(chunked(cut, 1000))) void entry;
    })(),
    /tar entry "second.bin" .*archive truncated/,
  );
});

test('an archive cut inside a header, or right after an extended header, is truncated', async (t) => {
  const archive = await archiveOf(t, 'posix');
  const secondHeader = archive.indexOf('PaxHeaders/second.bin') & ~511;
  await assert.rejects(readAll(chunked(archive.subarray(0, secondHeader + 100), 512)), /tar archive truncated: 100 of 512 header bytes/);
  const paxOnly = Buffer.concat([rawEntry({ name: 'PaxHeaders/x', flag: 'x' }, rawPax([['path', 'x']]))]);
  await assert.rejects(readAll(chunked(paxOnly, 512)), /tar archive truncated: 0 of 512 header bytes/);
  await assert.rejects(readAll(chunked(Buffer.concat([paxOnly, END_OF_ARCHIVE]), 512)), /after an extended header with no entry/);
});

test('an archive cut in the padding after the last body is truncated', async () => {
  const archive = await writeArchive([[makeHeader({ path: 'a', size: 3 }), Buffer.from('abc')]]);
  await assert.rejects(readAll(chunked(archive.subarray(0, 512 + 3), 512)), /tar entry "a" .*archive truncated/);
});

test('sparse files from GNU tar are refused in both GNU and pax form', async (t) => {
  const dir = await makeTempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const holey = path.join(root, 'holey');
  await writeFile(holey, '');
  await truncate(holey, 1024 * 1024);
  const handle = await open(holey, 'a');
  await handle.write('tail');
  await handle.close();
  for (const [format, problem] of [
    ['gnu', /tar entry "holey" .*sparse files \(GNU type 'S'\) are not supported/],
    ['posix', /tar entry "holey" .*sparse files \(pax GNU\.sparse\.\w+\) are not supported/],
  ] as const) {
    const archive = path.join(dir, `${format}.tar`);
    await run('tar', ['--sparse', `--format=${format}`, '-cf', archive, '-C', root, 'holey']);
    await assert.rejects(readAll(createReadStream(archive)), problem, format);
  }
});

test('unknown entry types are refused, naming the type', async () => {
  for (const flag of ['D', 'V', 'Z']) {
    const archive = Buffer.concat([rawEntry({ name: 'odd', flag }), END_OF_ARCHIVE]);
    await assert.rejects(readAll(chunked(archive, 512)), new RegExp(`tar entry "odd" .*unsupported entry type "${flag}"`));
  }
});

test('negative, oversized and unreadable sizes are refused', async () => {
  const negative = Buffer.alloc(12, 0xff);
  const oversized = Buffer.alloc(12, 0x7f);
  oversized[0] = 0x80;
  const garbage = Buffer.from('12x45\0\0\0\0\0\0\0', 'latin1');
  await assert.rejects(readAll(chunked(Buffer.concat([rawHeader({ name: 'neg', flag: '0', sizeField: negative }), END_OF_ARCHIVE]), 512)), /"neg" .*invalid size -1/);
  await assert.rejects(readAll(chunked(Buffer.concat([rawHeader({ name: 'big', flag: '0', sizeField: oversized }), END_OF_ARCHIVE]), 512)), /"big" .*unreadable size field/);
  await assert.rejects(readAll(chunked(Buffer.concat([rawHeader({ name: 'bad', flag: '0', sizeField: garbage }), END_OF_ARCHIVE]), 512)), /"bad" .*unreadable size field/);
  const paxSize = rawEntry({ name: 'PaxHeaders/p', flag: 'x' }, rawPax([['size', '-5']]));
  await assert.rejects(readAll(chunked(Buffer.concat([paxSize, rawEntry({ name: 'p', flag: '0' }), END_OF_ARCHIVE]), 512)), /"p" .*invalid pax size "-5"/);
  const hugePax = rawHeader({ name: 'PaxHeaders/h', flag: 'x', size: 2 ** 30 });
  await assert.rejects(readAll(chunked(Buffer.concat([hugePax, END_OF_ARCHIVE]), 512)), /"PaxHeaders\/h" .*extended header size 1073741824 is not between 0 and/);
});

test('malformed pax records are refused', async () => {
  for (const [data, problem] of [
    [Buffer.from('99 path=x\n'), /malformed pax record at byte 0/],
    [Buffer.from('10 pathx=y!'), /does not end in a newline/],
    [Buffer.from('9 pathxy\n'), /has no "="/],
  ] as const) {
    const archive = Buffer.concat([rawEntry({ name: 'PaxHeaders/m', flag: 'x' }, data), rawEntry({ name: 'm', flag: '0' }), END_OF_ARCHIVE]);
    await assert.rejects(readAll(chunked(archive, 512)), problem);
  }
});
