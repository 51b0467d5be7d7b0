// The embedded client's mount against local disk, on a repository made by our publisher and
// served by nginx on loopback: (1) sequential read of a 256 MiB file with the object cache warm
// vs the same bytes from a local file (both with the page cache dropped), and again on a new
// mount with the object in the page cache (what passthrough shares), (2) stat of 10k files
// with the cache warm: first on a fresh mount, again from the kernel's cache, and once more after
// the kernel dropped its entries (what a mount in use for a while answers), (3) the first read of
// a small file with everything cold.
//   npm run build && node bench/cvmfs-mount.ts
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createReadStream, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isMounted } from '../src/core/fuse/mount.ts';
import { ingest } from '../src/core/cvmfs/publish/ingest.ts';
import { initRepository } from '../src/core/cvmfs/publish/init.ts';
import { startNginx } from '../test/helpers/nginx.ts';
import { run } from '../test/helpers/process.ts';

const EXECUTABLE = fileURLToPath(new URL('../dist/cvmfs-graphdriver', import.meta.url));
const FQRN = 'mount.bench.local';
const BIG_MIB = 256;
const SMALL_FILES = 10_000;

async function dropPageCache(): Promise<void> {
  await run('sh', ['-c', 'sync; echo 1 > /proc/sys/vm/drop_caches']);
}

/** The kernel forgets its dentries and inodes, a mount's included (it sends FORGETs). */
async function dropEntryCache(): Promise<void> {
  await run('sh', ['-c', 'echo 2 > /proc/sys/vm/drop_caches']);
  await sleep(500);
}

async function readAll(file: string): Promise<number> {
  const started = performance.now();
  for await (const _ of createReadStream(file, { highWaterMark: 1024 * 1024 }));
  return (performance.now() - started) / 1000;
}

function statAll(paths: string[]): number {
  const started = performance.now();
  for (const path of paths) statSync(path);
  return paths.length / ((performance.now() - started) / 1000);
}

const dir = await mkdtemp('/tmp/bench-mount-');
const mountpoint = join(dir, 'mnt');
let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
const mountArgs = () => ['mount', `${nginx!.repositoryUrl(FQRN)}`, mountpoint, '--fqrn', FQRN, '--key', join(dir, 'repo', 'keys', `${FQRN}.pub`), '--cache', join(dir, 'cache')];
async function mount(): Promise<void> {
  const child = spawn(EXECUTABLE, mountArgs(), { stdio: 'ignore', detached: true });
  child.unref();
  while (!(await isMounted(mountpoint))) await sleep(10);
}
async function unmount(): Promise<void> {
  await run(EXECUTABLE, ['umount', mountpoint]);
  await sleep(200);
}

try {
  // The content: one big random file, and 10k small files in 100 directories.
  const stage = join(dir, 'stage');
  await mkdir(join(stage, 'small'), { recursive: true });
  const big = Buffer.alloc(BIG_MIB * 1024 * 1024);
  randomFillSync(big);
  writeFileSync(join(stage, 'big.bin'), big);
  const smallPaths: string[] = [];
  for (let i = 0; i < SMALL_FILES; i++) {
    const relative = join('small', `d${Math.floor(i / 100)}`, `f${i}`);
    if (i % 100 === 0) await mkdir(join(stage, 'small', `d${Math.floor(i / 100)}`));
    writeFileSync(join(stage, relative), `file ${i}\n`);
    smallPaths.push(relative);
  }
  await run('tar', ['-C', stage, '-cf', join(dir, 'content.tar'), '.']);
  const { publisher } = await initRepository(join(dir, 'repo'), { fqrn: FQRN });
  await ingest(publisher, { tar: createReadStream(join(dir, 'content.tar')), baseDir: '/content', createCatalog: true });
  nginx = await startNginx({ [FQRN]: publisher.paths.storage });
  await mkdir(mountpoint);

  // (3) everything cold: a fresh mount, an empty cache, the catalogs still to fetch.
  await mount();
  let started = performance.now();
  await readFile(join(mountpoint, 'content', smallPaths[4242]!));
  const coldSmallMs = performance.now() - started;

  // Warm the object cache with the big file and every catalog, then start over on a new mount.
  await readAll(join(mountpoint, 'content', 'big.bin'));
  for (const path of smallPaths) statSync(join(mountpoint, 'content', path));
  await unmount();

  await dropPageCache();
  const localSeconds = await readAll(join(stage, 'big.bin'));
  await dropPageCache();
  await mount();
  const fuseSeconds = await readAll(join(mountpoint, 'content', 'big.bin'));

  // A new mount: its own page cache is empty, the cached object's is not.
  await unmount();
  await mount();
  const localWarmSeconds = await readAll(join(stage, 'big.bin'));
  const fuseWarmSeconds = await readAll(join(mountpoint, 'content', 'big.bin'));

  const fusePaths = smallPaths.map((path) => join(mountpoint, 'content', path));
  const firstStats = statAll(fusePaths);
  const againStats = statAll(fusePaths);
  const localStats = statAll(smallPaths.map((path) => join(stage, path)));
  await dropEntryCache();
  const droppedStats = statAll(fusePaths);
  await unmount();

  const localRate = BIG_MIB / localSeconds;
  const fuseRate = BIG_MIB / fuseSeconds;
  console.log('| measurement | embedded mount | local disk | ratio | target |');
  console.log('| --- | --- | --- | --- | --- |');
  console.log(`| sequential read, ${BIG_MIB} MiB, object cache warm, page cache dropped | ${fuseRate.toFixed(0)} MiB/s | ${localRate.toFixed(0)} MiB/s | ${(fuseRate / localRate).toFixed(2)}x | >= 0.5x |`);
  const localWarmRate = BIG_MIB / localWarmSeconds;
  const fuseWarmRate = BIG_MIB / fuseWarmSeconds;
  console.log(`| sequential read, ${BIG_MIB} MiB, new mount, the object (and the local file) in the page cache | ${fuseWarmRate.toFixed(0)} MiB/s | ${localWarmRate.toFixed(0)} MiB/s | ${(fuseWarmRate / localWarmRate).toFixed(2)}x | report |`);
  console.log(`| stat of ${SMALL_FILES} files, object cache warm, fresh mount (first FUSE lookups) | ${(firstStats / 1000).toFixed(1)}k/s | ${(localStats / 1000).toFixed(1)}k/s | ${(firstStats / localStats).toFixed(2)}x | report |`);
  console.log(`| stat of ${SMALL_FILES} files, again (kernel's entry cache) | ${(againStats / 1000).toFixed(1)}k/s | | | |`);
  console.log(`| stat of ${SMALL_FILES} files, object cache and mount warm, kernel's dentries and inodes dropped | ${(droppedStats / 1000).toFixed(1)}k/s | | | >= 20k/s |`);
  console.log(`| first read of a small file, all cold, nginx on loopback | ${coldSmallMs.toFixed(0)} ms | | | report |`);
} finally {
  if (await isMounted(mountpoint)) await unmount();
  await nginx?.stop();
  await rm(dir, { recursive: true, force: true });
}
