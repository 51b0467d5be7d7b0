// One HelloBench-style comparison (see bench/thin-vs-pull.ts): a regular pull under overlay2
// against the same image made thin and run under serve-driver, cold and warm, with the
// registry and the repository server behind a link of a given shape.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd } from '../../test/helpers/dockerd.ts';
import { startNginx } from '../../test/helpers/nginx.ts';
import { LOOPBACK, run, type ServerPlace } from '../../test/helpers/process.ts';
import { startRegistry } from '../../test/helpers/registry.ts';
import type { BenchImage } from './bench-images.ts';
import { createServerNamespace } from './netns.ts';
import { startShapedLink, type LinkShape, type ShapedLink } from './shaped-link.ts';

export const EXECUTABLE = fileURLToPath(new URL('../../dist/cvmfs-graphdriver', import.meta.url));
export const FQRN = 'bench.cvmfs.local';

export interface Measurement {
  seconds: number;
  bytes: number;
}

export type Case = 'a' | 'b' | 'c' | 'd' | 'e' | 'f';

// Runs of (c) and (d) whose medians are reported (at least five, as the stargz CI takes), and of
// (e) and (f), which start a dockerd (and a plugin) for each.
const WARM_RUNS = 7;
const RESTART_RUNS = 3;

/**
 * The median seconds of each measurement, taken in turn `runs` times: a case and its floor
 * measured alternately meet the host in the same state (one run moves by ±30% on a busy host,
 * and its pace drifts over minutes).
 */
async function alternatedMedians(runs: number, measures: Array<() => Promise<number>>): Promise<number[]> {
  const seconds = measures.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (const [index, measure] of measures.entries()) seconds[index]!.push(await measure());
  }
  return seconds.map((taken) => taken.toSorted((x, y) => x - y)[Math.floor(runs / 2)]!);
}

async function timed(task: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await task();
  return (performance.now() - start) / 1000;
}

function transferred(links: ShapedLink[]): number {
  return links.reduce((sum, link) => sum + link.bytes().down + link.bytes().up, 0);
}

/** How the servers are reached: the shape of the link, and whether they sit in a network namespace of their own. */
export interface LinkSetup {
  shape: LinkShape;
  ownNamespace: boolean;
}

export async function comparePull(image: BenchImage, link: LinkSetup, dir: string): Promise<Record<Case, Measurement>> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    let place: ServerPlace = LOOPBACK;
    if (link.ownNamespace) {
      const namespace = await createServerNamespace();
      cleanups.unshift(() => namespace.remove());
      place = namespace;
    }
    const registry = await startRegistry({ place });
    cleanups.unshift(() => registry.stop());
    const nginx = await startNginx({ [FQRN]: join(dir, 'repo', 'storage') }, place);
    cleanups.unshift(() => nginx.stop());
    const [registryHost, registryPort] = registry.host.split(':');
    const registryLink = await startShapedLink(registryHost!, Number(registryPort), link.shape);
    cleanups.unshift(() => registryLink.close());
    const nginxLink = await startShapedLink(place.address, nginx.port, link.shape);
    cleanups.unshift(() => nginxLink.close());
    const links = [registryLink, nginxLink];
    // Setting up (pushing the image, converting it) goes round the shaping, over loopback, where
    // registry clients speak plain HTTP.
    const setupLink = await startShapedLink(registryHost!, Number(registryPort), { bitsPerSecond: 0, rttMs: 0 });
    cleanups.unshift(() => setupLink.close());
    const regular = `${setupLink.address}/bench/${image.name}:1`;
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${(await image.archive()).path}`, `docker://${regular}`]);
    await run(EXECUTABLE, ['make-thin', '-i', regular, '-o', `${setupLink.address}/bench/${image.name}:thin`, '-r', join(dir, 'repo'), '--push']);
    const viaLink = (reference: string) => reference.replace(setupLink.address, registryLink.address);
    const results = {} as Record<Case, Measurement>;

    const overlay = await startDockerd({ storageDriver: 'overlay2', insecureRegistries: [registryLink.address] });
    cleanups.unshift(() => overlay.stop());
    // Every case is one `docker run`, which pulls the image when it is absent: the time a user
    // waits from typing it to the ready line, with one docker CLI start (~0.1 s here) in each.
    const dockerRun = async (daemon: Dockerd, reference: string) => {
      const { stdout } = await daemon.docker(['run', '--rm', '--network', 'none', reference, ...image.command]);
      if (!stdout.includes('ready')) throw new Error(`${image.name} did not print ready: ${stdout}`);
    };
    let before = transferred(links);
    results.a = { seconds: await timed(() => dockerRun(overlay, viaLink(regular))), bytes: transferred(links) - before };
    // (d): the regular image present, the floor for (c).
    const present = () => timed(() => dockerRun(overlay, viaLink(regular)));

    const cache = join(dir, `cache-${image.name}-${Date.now()}`);
    const thin = viaLink(`${setupLink.address}/bench/${image.name}:thin`);
    /** Run of the absent thin image on a new dockerd and plugin, then `more` on the same ones. */
    const thinRun = async (more: (runAbsent: () => Promise<number>) => Promise<void> = async () => {}) => {
      const plugin = await startLegacyPlugin({
        name: uniquePluginName(),
        executable: EXECUTABLE,
        extraArgs: ['--repository', `${FQRN}=http://${nginxLink.address}/cvmfs/${FQRN},key=${join(dir, 'repo', 'keys', `${FQRN}.pub`)}`, '--cache', cache, '--log-dir', join(dir, 'logs')],
      });
      const thinDockerd = await startDockerd({ storageDriver: plugin.name, insecureRegistries: [registryLink.address] });
      try {
        const seconds = await timed(() => dockerRun(thinDockerd, thin));
        await more(async () => {
          await thinDockerd.docker(['rmi', thin]);
          return timed(() => dockerRun(thinDockerd, thin));
        });
        return seconds;
      } finally {
        await thinDockerd.stop();
        await plugin.stop();
      }
    };
    before = transferred(links);
    let coldBytes = 0;
    const cold = await thinRun(async (runAbsent) => {
      coldBytes = transferred(links) - before;
      // (c): warm as the lazy-pull benchmarks count it: the host goes on running with its cache,
      // and a new container starts; here the image is removed first, so it is pulled again.
      const [c, d] = await alternatedMedians(WARM_RUNS, [runAbsent, present]);
      results.c = { seconds: c!, bytes: 0 };
      results.d = { seconds: d!, bytes: 0 };
    });
    results.b = { seconds: cold, bytes: coldBytes };
    // (e): the cache warm, but dockerd and the plugin started afresh (a host after a reboot);
    // (f): the regular image present on a dockerd started afresh, the floor for (e).
    const [e, f] = await alternatedMedians(RESTART_RUNS, [() => thinRun(), async () => {
      await overlay.restart();
      return present();
    }]);
    results.e = { seconds: e!, bytes: 0 };
    results.f = { seconds: f!, bytes: 0 };
    await rm(cache, { recursive: true, force: true });
    return results;
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}

