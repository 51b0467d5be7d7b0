// docker load of a ~400 MiB multi-layer image and its first docker run, through serve-driver
// (the built single executable as a legacy plugin) and through Docker's built-in overlay2, on
// the same dockerd, in one run. Prints each time, the ratio, and the plugin's peak memory.
//   npm run build && node bench/driver-load.ts [rounds]
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startDockerd, startLegacyPlugin, uniquePluginName } from '../test/helpers/dockerd.ts';
import { systemImage } from '../test/helpers/images.ts';

const EXECUTABLE = fileURLToPath(new URL('../dist/cvmfs-graphdriver', import.meta.url));
const rounds = Number(process.argv[2] ?? 3);

interface Timing {
  loadMs: number;
  runMs: number;
  peakRssMb?: number;
}

function peakRssMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(match[1]) / 1024;
}

async function timed(task: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await task();
  return performance.now() - started;
}

async function measure(driver: 'overlay2' | 'serve-driver', imagePath: string, tag: string): Promise<Timing> {
  const plugin = driver === 'serve-driver' ? await startLegacyPlugin({ name: uniquePluginName(), executable: EXECUTABLE }) : undefined;
  const dockerd = await startDockerd({ storageDriver: plugin ? plugin.name : 'overlay2' });
  try {
    const loadMs = await timed(() => dockerd.docker(['load', '-i', imagePath]));
    const runMs = await timed(() => dockerd.docker(['run', '--rm', '--network', 'none', tag, 'ls', '/usr/include/stdio.h']));
    return { loadMs, runMs, peakRssMb: plugin ? peakRssMb(plugin.pid) : undefined };
  } finally {
    await dockerd.stop();
    await plugin?.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: run \`npm run build\` first`);
const image = await systemImage();
console.log(`image ${image.tag}: ${(statSync(image.path).size / 2 ** 20).toFixed(0)} MiB docker-archive, 4 layers; ${rounds} rounds, alternating`);
const results: Record<string, Timing[]> = { overlay2: [], 'serve-driver': [] };
for (let round = 0; round < rounds; round++) {
  for (const driver of ['overlay2', 'serve-driver'] as const) {
    const timing = await measure(driver, image.path, image.tag);
    results[driver]!.push(timing);
    console.log(`round ${round + 1} ${driver}: load ${(timing.loadMs / 1000).toFixed(2)} s, first run ${(timing.runMs / 1000).toFixed(2)} s${timing.peakRssMb ? `, plugin peak RSS ${timing.peakRssMb.toFixed(0)} MB` : ''}`);
  }
}
const summary = (driver: string) => {
  const timings = results[driver]!;
  return { load: median(timings.map((t) => t.loadMs)), run: median(timings.map((t) => t.runMs)) };
};
const base = summary('overlay2');
const ours = summary('serve-driver');
const peak = Math.max(...results['serve-driver']!.map((t) => t.peakRssMb ?? 0));
console.log('\n| driver | docker load (median) | first docker run (median) | load + run |');
console.log('| --- | --- | --- | --- |');
console.log(`| overlay2 (built in) | ${(base.load / 1000).toFixed(2)} s | ${(base.run / 1000).toFixed(2)} s | ${((base.load + base.run) / 1000).toFixed(2)} s |`);
console.log(`| serve-driver | ${(ours.load / 1000).toFixed(2)} s | ${(ours.run / 1000).toFixed(2)} s | ${((ours.load + ours.run) / 1000).toFixed(2)} s |`);
console.log(`| ratio | ${(ours.load / base.load).toFixed(2)}x | ${(ours.run / base.run).toFixed(2)}x | ${((ours.load + ours.run) / (base.load + base.run)).toFixed(2)}x |`);
console.log(`\nplugin peak RSS while loading: ${peak.toFixed(0)} MB (target <= 150 MB); load+run target <= 1.3x overlay2`);
