// make-thin of a ~400 MiB image against the floor of doing the same work with standard tools:
// pulling its blobs (skopeo copy to a directory) and unpacking them (tar -x), in one run, on
// the same disk, from a registry on loopback. Prints both times and the ratio (target <= 2.5x).
//   npm run build && node bench/make-thin.ts [rounds]
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initRepository } from '../src/core/cvmfs/publish/init.ts';
import { systemImage } from '../test/helpers/images.ts';
import { run } from '../test/helpers/process.ts';
import { startRegistry } from '../test/helpers/registry.ts';

const EXECUTABLE = fileURLToPath(new URL('../dist/cvmfs-graphdriver', import.meta.url));
const rounds = Number(process.argv[2] ?? 1);

async function timed(task: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await task();
  return (performance.now() - start) / 1000;
}

const registry = await startRegistry();
const dir = await mkdtemp('/tmp/bench-make-thin-');
try {
  const image = await systemImage();
  const source = `${registry.host}/bench/system:1`;
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${image.path}`, `docker://${source}`]);
  console.log('| round | floor: skopeo copy + tar -x | make-thin (embedded publisher) | ratio |');
  console.log('| --- | --- | --- | --- |');
  for (let round = 1; round <= rounds; round++) {
    const work = join(dir, `round-${round}`);
    await mkdir(work, { recursive: true });
    // Each side starts with no dirty pages of the other to write back on its time.
    await run('sync', []);
    const floor = await timed(async () => {
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${source}`, `dir:${join(work, 'blobs')}`]);
      const manifest = JSON.parse(readFileSync(join(work, 'blobs', 'manifest.json'), 'utf8')) as { layers: Array<{ digest: string }> };
      for (const [index, layer] of manifest.layers.entries()) {
        const target = join(work, 'unpacked', String(index));
        await mkdir(target, { recursive: true });
        await run('tar', ['-xzf', join(work, 'blobs', layer.digest.slice('sha256:'.length)), '-C', target]);
      }
    });
    await initRepository(join(work, 'repo'), { fqrn: 'make-thin.bench.local' });
    await run('sync', []);
    const ours = await timed(() => run(EXECUTABLE, ['make-thin', '-i', source, '-o', 'bench/system:thin', '-r', join(work, 'repo'), '--output-file', join(work, 'thin.tar')]));
    console.log(`| ${round} | ${floor.toFixed(2)} s | ${ours.toFixed(2)} s | ${(ours / floor).toFixed(2)}x |`);
    await rm(work, { recursive: true, force: true });
  }
} finally {
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
}
