// Publishing speed of the CernVM-FS publisher, in one run on one disk:
//  1. ingest of a ≥300 MB layer tar (GNU tar of /usr/include, /usr/share/doc, /usr/lib/gcc) into a
//     new repository, against the floor of unpacking the same tar with `tar -x` and hashing every
//     file with sha1sum; prints the times and ratios (target ≤ 2.5) with zlib's default level 6
//     (what cvmfs uses) and with level 1 (publisher.json "compressionLevel");
//  2. lookups per second through the reader on a catalog of 100,000 entries (target ≥ 50,000/s).
//   node bench/cvmfs-ingest.ts [rounds]
import { execFileSync } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ingest } from '../src/core/cvmfs/publish/ingest.ts';
import { initRepository } from '../src/core/cvmfs/publish/init.ts';
import { Repository } from '../src/core/cvmfs/repository.ts';
import { TarWriter } from '../src/core/tar/writer.ts';

const rounds = Number(process.argv[2] ?? 1);
const SOURCES = ['usr/include', 'usr/share/doc', 'usr/lib/gcc'];
const LOOKUP_ENTRIES = 100_000;

async function timed(task: () => Promise<unknown> | unknown): Promise<number> {
  const started = performance.now();
  await task();
  return (performance.now() - started) / 1000;
}

function floor(tar: string, into: string): void {
  execFileSync('tar', ['-xf', tar, '-C', into]);
  execFileSync('sh', ['-c', 'find . -type f -print0 | xargs -0 sha1sum > /dev/null'], { cwd: into });
}

async function publishTar(tar: string, into: string, compressionLevel: number): Promise<void> {
  const { publisher } = await initRepository(into, { fqrn: 'bench.cvmfs.test', compressionLevel });
  await ingest(publisher, { tar: createReadStream(tar, { highWaterMark: 1024 * 1024 }), baseDir: '/layer', createCatalog: true });
}

/** A tar of `count` empty files in directories of 1,000. */
async function* manyFiles(count: number): AsyncGenerator<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  const writer = new TarWriter(sink);
  const header = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', size: 0, mtime: 1_700_000_000, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map() };
  for (let index = 0; index < count; index++) {
    if (index % 1000 === 0) await writer.add({ ...header, type: 'directory', path: `d${index / 1000}/`, mode: 0o755 });
    await writer.add({ ...header, path: `d${Math.floor(index / 1000)}/f${index}` });
    if (chunks.length > 64) yield Buffer.concat(chunks.splice(0));
  }
  await writer.finish();
  yield Buffer.concat(chunks.splice(0));
}

async function lookupsPerSecond(work: string): Promise<{ perSecond: number; entries: number }> {
  const { publisher, publicKeyFile } = await initRepository(join(work, 'lookups'), { fqrn: 'lookups.cvmfs.test' });
  await ingest(publisher, { tar: Readable.from(manyFiles(LOOKUP_ENTRIES)), baseDir: '/many', createCatalog: true });
  const repository = await Repository.open({
    fqrn: 'lookups.cvmfs.test',
    location: { directory: publisher.paths.storage },
    publicKeys: publicKeyFile,
    cache: { directory: join(work, 'lookup-cache'), maxBytes: 1024 ** 3 },
  });
  try {
    const paths = Array.from({ length: 200_000 }, (_, i) => {
      const index = (i * 7919) % LOOKUP_ENTRIES;
      return `/many/d${Math.floor(index / 1000)}/f${index}`;
    });
    await repository.lookup(paths[0]!); // attaches the nested catalog
    const seconds = await timed(async () => {
      for (const path of paths) await repository.lookup(path);
    });
    return { perSecond: paths.length / seconds, entries: LOOKUP_ENTRIES };
  } finally {
    repository.close();
  }
}

const work = await mkdtemp(join(tmpdir(), 'cvmfs-bench-'));
try {
  const tar = join(work, 'layer.tar');
  execFileSync('tar', ['-cf', tar, '--numeric-owner', '-C', '/', ...SOURCES]);
  const megabytes = statSync(tar).size / 1e6;
  const files = Number(execFileSync('sh', ['-c', `tar -tvf ${tar} | grep -c '^-'`]).toString().trim());
  console.log(`layer tar: ${megabytes.toFixed(0)} MB, ${files} regular files (${SOURCES.map((s) => `/${s}`).join(' ')})`);
  execFileSync('cat', [tar], { stdio: ['ignore', 'ignore', 'inherit'] }); // same page-cache state for both
  for (let round = 1; round <= rounds; round++) {
    const floorDir = join(work, `floor-${round}`);
    await mkdir(floorDir);
    const floorSeconds = await timed(() => floor(tar, floorDir));
    await rm(floorDir, { recursive: true, force: true });
    const results = [];
    for (const level of [6, 1]) {
      const publishDir = join(work, `publish-${round}-${level}`);
      const seconds = await timed(() => publishTar(tar, publishDir, level));
      await rm(publishDir, { recursive: true, force: true });
      results.push(`level ${level}: ${seconds.toFixed(2)} s, ${(megabytes / seconds).toFixed(0)} MB/s, ratio ${(seconds / floorSeconds).toFixed(2)}`);
    }
    console.log(`round ${round}: tar -x + sha1sum ${floorSeconds.toFixed(2)} s; repo ingest ${results.join('; ')} (target ratio <= 2.5)`);
  }
  const lookups = await lookupsPerSecond(work);
  console.log(`lookups: ${lookups.perSecond.toFixed(0)}/s through Repository.lookup on a catalog of ${lookups.entries} files (target >= 50000/s)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
