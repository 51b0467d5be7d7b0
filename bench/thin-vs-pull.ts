// HelloBench-style: time from `docker run` of an image not on the host (which pulls it) to
// "the container printed ready", for
//   (a) the regular image under overlay2,
//   (b) the thin image under serve-driver, CernVM-FS cache cold,
//   (c) the same with the cache warm: (b)'s dockerd and plugin go on running, and the image is
//       removed and run again (warm as the lazy-pull benchmarks count it),
//   (d) the regular image already present (the floor for (c)),
//   (e) the thin image with the cache warm on a dockerd and plugin started afresh,
//   (f) the regular image present on a dockerd started afresh (the floor for (e)),
// with the registry and the repository server (nginx) reached over plain loopback and, from a
// network namespace of their own, over an emulated 100 Mbit/s, 20 ms RTT link. Prints a table and writes bench/thin-vs-pull.svg.
//   npm run build && node bench/thin-vs-pull.ts [image names, default all: python gcc big]
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initRepository } from '../src/core/cvmfs/publish/init.ts';
import { benchImages } from './lib/bench-images.ts';
import { comparePull, FQRN, type Case, type LinkSetup, type Measurement } from './lib/compare-pull.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
// The emulated link: servers in a network namespace of their own behind a veth pair, traffic
// shaped by a proxy in user space (this kernel has no netem).
const LINKS: Record<string, LinkSetup> = {
  loopback: { shape: { bitsPerSecond: 0, rttMs: 0 }, ownNamespace: false },
  '100Mbit/20ms': { shape: { bitsPerSecond: 100e6, rttMs: 20 }, ownNamespace: true },
};

function svgChart(rows: Array<{ label: string; results: Record<Case, Measurement> }>): string {
  const cases: Array<[Case, string, string]> = [['a', 'regular, pulled (overlay2)', '#888'], ['b', 'thin, cold cache', '#2a7'], ['c', 'thin, warm cache', '#27c'], ['d', 'regular image present', '#ccc'], ['e', 'thin, warm, restarted', '#7ad'], ['f', 'present, restarted', '#ddd']];
  const max = Math.max(...rows.flatMap((row) => cases.map(([c]) => row.results[c].seconds)));
  const barHeight = 14;
  const groupHeight = cases.length * barHeight + 18;
  const width = 720;
  const scale = (width - 260) / max;
  let y = 30;
  const parts = [`<text x="10" y="18" font-size="13" font-weight="bold">seconds until the container printed "ready" (shorter is better)</text>`];
  for (const row of rows) {
    parts.push(`<text x="10" y="${y + 10}" font-size="12" font-weight="bold">${row.label}</text>`);
    cases.forEach(([c, name, colour], index) => {
      const top = y + 14 + index * barHeight;
      const seconds = row.results[c].seconds;
      parts.push(`<rect x="200" y="${top}" width="${Math.max(1, seconds * scale).toFixed(1)}" height="${barHeight - 3}" fill="${colour}"/>`);
      parts.push(`<text x="195" y="${top + 10}" font-size="10" text-anchor="end">${name}</text>`);
      parts.push(`<text x="${(205 + seconds * scale).toFixed(1)}" y="${top + 10}" font-size="10">${seconds.toFixed(1)} s</text>`);
    });
    y += groupHeight + 8;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif">\n${parts.join('\n')}\n</svg>\n`;
}

const dir = await mkdtemp('/tmp/bench-thin-');
try {
  await initRepository(join(dir, 'repo'), { fqrn: FQRN });
  const wanted = process.argv.slice(2);
  const images = benchImages().filter((image) => wanted.length === 0 || wanted.includes(image.name));
  const rows: Array<{ label: string; results: Record<Case, Measurement> }> = [];
  console.log('| image (size) | link | (a) overlay2, pulled | (b) thin, cold | (c) thin, warm | (d) present | (e) thin, warm, restarted | (f) present, restarted | a/b | c/d | e/f | bytes (a) | bytes (b) | b/size |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const image of images) {
    const size = statSync((await image.archive()).path).size;
    for (const [linkName, link] of Object.entries(LINKS)) {
      const results = await comparePull(image, link, dir);
      rows.push({ label: `${image.name} (${(size / 1e6).toFixed(0)} MB), ${linkName}`, results });
      const { a, b, c, d, e, f } = results;
      console.log(`| ${image.name} (${(size / 1e6).toFixed(0)} MB) | ${linkName} | ${a.seconds.toFixed(2)} s | ${b.seconds.toFixed(2)} s | ${c.seconds.toFixed(2)} s | ${d.seconds.toFixed(2)} s | ${e.seconds.toFixed(2)} s | ${f.seconds.toFixed(2)} s | ${(a.seconds / b.seconds).toFixed(1)}x | ${(c.seconds / d.seconds).toFixed(2)}x | ${(e.seconds / f.seconds).toFixed(2)}x | ${(a.bytes / 1e6).toFixed(1)} MB | ${(b.bytes / 1e6).toFixed(1)} MB | ${((b.bytes / size) * 100).toFixed(1)}% |`);
    }
  }
  await writeFile(join(ROOT, 'bench/thin-vs-pull.svg'), svgChart(rows));
  console.log('\nchart: bench/thin-vs-pull.svg; targets: a/b >= 5x for the big image on the emulated link, b/size <= 15%, c/d <= 1.3x (e/f: the same after a restart)');
} finally {
  await rm(dir, { recursive: true, force: true });
}
