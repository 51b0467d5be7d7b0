// `npm run demo`: the whole system on the embedded default, on this machine. A sample image (a
// Python interpreter built from this host's files) is pushed to a local registry; make-thin
// publishes its layers into a fresh CernVM-FS repository (served by nginx) and pushes the thin
// image; then a dockerd on Docker's overlay2 pulls and runs the regular image, and a dockerd on
// serve-driver pulls and runs the thin one, fetching only what Python reads. Prints both.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initRepository } from '../src/core/cvmfs/publish/init.ts';
import { benchImages } from '../bench/lib/bench-images.ts';
import { comparePull, FQRN } from '../bench/lib/compare-pull.ts';

const NEEDED: Record<string, string> = {
  '/usr/sbin/dockerd': 'docker.io',
  '/usr/bin/docker-registry': 'docker-registry',
  '/usr/sbin/nginx': 'nginx-light',
  '/usr/bin/skopeo': 'skopeo',
  '/usr/bin/setfattr': 'attr',
  '/usr/bin/python3.11': 'python3.11',
  // For the build: the plugin's rootfs takes busybox, and the executable is stripped.
  '/bin/busybox': 'busybox-static',
  '/usr/bin/strip': 'binutils',
};

function say(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

if (process.getuid?.() !== 0) throw new Error('the demo starts dockerd and mounts file systems: run it as root');
const missing = Object.entries(NEEDED).filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg);
if (missing.length > 0) {
  say(`installing what the demo needs from Debian: ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}
say('building the single executable and the plugin');
execFileSync(process.execPath, [fileURLToPath(new URL('../build.mjs', import.meta.url))], { stdio: 'inherit' });

const image = benchImages().find((candidate) => candidate.name === 'python')!;
const dir = await mkdtemp('/tmp/cvmfs-graphdriver-demo-');
try {
  say(`creating the CernVM-FS repository ${FQRN} with the embedded publisher`);
  await initRepository(join(dir, 'repo'), { fqrn: FQRN });
  const archive = await image.archive();
  say(`sample image: ${archive.tag}, a Python interpreter from this host's files; its command: ${image.command.join(' ')}`);
  say('pushing it to a local registry, converting it with make-thin (publish layers + push the thin image), then');
  process.stdout.write('   (a) docker run of the regular image on a dockerd using overlay2 (it pulls the image first)\n');
  process.stdout.write('   (b) docker run of the thin image on a dockerd using serve-driver, cache empty\n');
  process.stdout.write('   (c) the thin image removed and run again there, cache warm (median of 7, alternating with (d))\n');
  process.stdout.write('   (d) the regular image run again, already present (median of 7)\n');
  process.stdout.write('   (e) the thin image, cache warm, on a dockerd and plugin started afresh (median of 3, alternating with (f))\n');
  process.stdout.write('   (f) the regular image present, on a dockerd started afresh (median of 3)\n');
  const results = await comparePull(image, { shape: { bitsPerSecond: 0, rttMs: 0 }, ownNamespace: false }, dir);
  say('what happened (registry and repository server on loopback)');
  const rows: Array<[string, keyof typeof results]> = [
    ['(a) regular image, pulled, overlay2', 'a'],
    ['(b) thin image, cold cache', 'b'],
    ['(c) thin image, warm cache', 'c'],
    ['(d) regular image present', 'd'],
    ['(e) thin image, warm, restarted', 'e'],
    ['(f) regular image present, restarted', 'f'],
  ];
  for (const [label, key] of rows) {
    const { seconds, bytes } = results[key];
    process.stdout.write(`${label.padEnd(37)} ${seconds.toFixed(2).padStart(6)} s   ${(bytes / 1e6).toFixed(1).padStart(6)} MB over the network\n`);
  }
  const fraction = results.b.bytes / results.a.bytes;
  say(`the thin image moved ${(fraction * 100).toFixed(0)}% of the bytes a regular pull moves; bench/thin-vs-pull.ts measures larger images over a slow link`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
