// Rough throughput of the server, reported next to the same work on a local file system. The
// numbers are printed as test diagnostics and not asserted (they depend on the machine); what
// is asserted is that the work was done right.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { run } from '../helpers/process.ts';
import { mountForTest, q, sh } from './helpers.ts';
import { MemoryFilesystem } from './memory-fs.ts';

const MiB = 1024 * 1024;
const BIG_SIZE = 256 * MiB;
const FILE_COUNT = 10_000;

async function localDirectory(t: TestContext): Promise<string> {
  const directory = await mkdtemp(path.join(tmpdir(), 'fuse-perf-'));
  t.after(() => rm(directory, { recursive: true }));
  return directory;
}

/** Seconds one command takes in a child process. */
async function timed(script: string): Promise<number> {
  const started = performance.now();
  await sh(script);
  return (performance.now() - started) / 1000;
}

test('sequential read of a 256 MiB file: FUSE against a local file', async (t) => {
  const data = randomBytes(BIG_SIZE);
  const fs = new MemoryFilesystem();
  fs.file('big', data);
  const { mountpoint } = await mountForTest(t, fs);
  const local = path.join(await localDirectory(t), 'big');
  await writeFile(local, data);
  const onMount = q(path.join(mountpoint, 'big'));

  const rate = (seconds: number) => `${(BIG_SIZE / MiB / seconds).toFixed(0)} MiB/s`;
  const results: Array<[string, number]> = [
    ['FUSE, first read (128 KiB readahead READs)', await timed(`dd if=${onMount} of=/dev/null bs=1M status=none`)],
    ['FUSE, again (page cache kept)', await timed(`dd if=${onMount} of=/dev/null bs=1M status=none`)],
    ['FUSE, O_DIRECT (1 MiB READs)', await timed(`dd if=${onMount} of=/dev/null bs=1M iflag=direct status=none`)],
    ['local file, page cache', await timed(`dd if=${q(local)} of=/dev/null bs=1M status=none`)],
    ['local file, O_DIRECT', await timed(`dd if=${q(local)} of=/dev/null bs=1M iflag=direct status=none`)],
  ];
  for (const [what, seconds] of results) t.diagnostic(`${what}: ${seconds.toFixed(2)} s, ${rate(seconds)}`);

  assert.equal(fs.bytesRead.get(fs.attrOf('big').ino), 2 * BIG_SIZE, 'read once cached, once direct');
  const digest = (await run('sha256sum', [path.join(mountpoint, 'big')])).stdout.split(' ')[0];
  assert.equal(digest, createHash('sha256').update(data).digest('hex'));
});

test('stat() of 10k files: FUSE against a local directory', async (t) => {
  const fs = new MemoryFilesystem();
  fs.dir('files');
  const names = Array.from({ length: FILE_COUNT }, (_, i) => `file-${i}`);
  names.forEach((name, i) => fs.file(`files/${name}`, 'x'.repeat(i % 100)));
  const { mountpoint } = await mountForTest(t, fs);
  const local = await localDirectory(t);
  await mkdir(path.join(local, 'files'));
  await Promise.all(names.map((name, i) => writeFile(path.join(local, 'files', name), 'x'.repeat(i % 100))));

  // Explicit paths (no listing), so every cold stat is one LOOKUP.
  const statAll = async (root: string): Promise<[number, string]> => {
    const started = performance.now();
    const { stdout } = await run('stat', ['-c', '%s', ...names.map((name) => path.join(root, 'files', name))]);
    return [(performance.now() - started) / 1000, stdout];
  };
  const rate = (seconds: number) => `${(FILE_COUNT / seconds / 1000).toFixed(1)}k stat/s`;
  const [cold, coldSizes] = await statAll(mountpoint);
  const [warm, warmSizes] = await statAll(mountpoint);
  const [onDisk, localSizes] = await statAll(local);
  t.diagnostic(`FUSE, cold (one LOOKUP each): ${cold.toFixed(2)} s, ${rate(cold)}`);
  t.diagnostic(`FUSE, cached entries: ${warm.toFixed(2)} s, ${rate(warm)}`);
  t.diagnostic(`local directory: ${onDisk.toFixed(2)} s, ${rate(onDisk)}`);

  const expected = names.map((_, i) => `${i % 100}\n`).join('');
  assert.equal(coldSizes, expected);
  assert.equal(warmSizes, expected);
  assert.equal(localSizes, expected);
  assert.equal(fs.calls.get('lookup'), FILE_COUNT + 1, 'each name looked up once ("files" too), then cached');
});
