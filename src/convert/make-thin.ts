import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { log } from '../core/log.ts';
import { downloadBlob } from '../core/registry/blob-reader.ts';
import { RegistryClient } from '../core/registry/client.ts';
import { decompressLayer } from '../core/registry/layer-decompression.ts';
import type { Descriptor } from '../core/registry/manifest.ts';
import { parsePlatform } from '../core/registry/platform.ts';
import { pushBlob, pushManifest } from '../core/registry/push.ts';
import { formatImageReference, parseImageReference } from '../core/registry/reference.ts';
import { resolveImage } from '../core/registry/resolve-image.ts';
import { sha256Digest } from '../core/registry/digest.ts';
import { DOCKER_MANIFEST } from '../core/registry/media-types.ts';
import type { ThinDescriptor } from '../core/thin-descriptor.ts';
import { loadIntoDocker } from './docker-engine.ts';
import { openLayerPublisher, type LayerPublisher, type PublisherChoice } from './layer-publishers.ts';
import { buildThinImage, dockerArchive } from './thin-image.ts';
import { progressReporter } from './progress.ts';

// make-thin: registry image in, thin image out. Layers are downloaded in parallel (each
// verified against its digest before anything is published), then ingested one by one as
// their own revisions; layers already in the repository are skipped, so a failed or
// interrupted run is completed by running it again. The thin image is built only once every
// layer is published.

export interface MakeThinOptions {
  input: string;
  output: string;
  /** Publisher directory (embedded) or repository name (cvmfs_server). */
  repository: string;
  /** docker2cvmfs's layout, <subdirectory>/<hex>, instead of DUCC's .layers/<xx>/<hex>/layerfs. */
  subdirectory?: string;
  registry?: string;
  platform?: string;
  publisher: PublisherChoice;
  push: boolean;
  outputFile?: string;
  load: boolean;
  parallel: number;
}

export interface LayerOutcome {
  digest: string;
  size: number;
  path: string;
  state: 'published' | 'already there';
}

export interface MakeThinResult {
  input: string;
  manifestDigest: string;
  repository: string;
  layers: LayerOutcome[];
  thinJson: ThinDescriptor;
  configDigest: string;
  outputFile?: string;
  loaded?: string;
  pushed?: string;
}

function layerPath(hex: string, subdirectory: string | undefined): string {
  if (subdirectory !== undefined) return `${subdirectory.replace(/^\/+|\/+$/g, '')}/${hex}`;
  return `.layers/${hex.slice(0, 2)}/${hex}/layerfs`;
}

function hexOf(digest: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!match) throw new Error(`layer digest ${digest} is not sha256; thin images name layers by their sha256 digest`);
  return match[1]!;
}

/** Runs tasks with at most `limit` at once. */
function limiter(limit: number): <R>(task: () => Promise<R>) => Promise<R> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export async function makeThin(options: MakeThinOptions): Promise<MakeThinResult> {
  const input = parseImageReference(options.input);
  const output = parseImageReference(options.output);
  const client = RegistryClient.forReference(input, { registryUrl: options.registry });
  const image = await resolveImage(client, input, options.platform ? { platform: parsePlatform(options.platform) } : {});
  const inputName = formatImageReference(input);
  log.info(`${inputName}: manifest ${image.manifestDigest}, ${image.manifest.layers.length} layers`);

  const publisher = await openLayerPublisher(options.repository, options.publisher);
  const work = await mkdtemp(path.join(tmpdir(), 'make-thin-'));
  try {
    const layers = image.manifest.layers.map((layer) => ({ layer, hex: hexOf(layer.digest), path: layerPath(hexOf(layer.digest), options.subdirectory) }));
    const present = await Promise.all(layers.map(({ path: where }) => publisher.has(where)));
    const missing = layers.filter((_, index) => !present[index]);
    const progress = progressReporter(missing.map(({ layer }) => ({ name: layer.digest.slice(7, 19), total: layer.size })));
    const slot = limiter(options.parallel);
    const downloads = missing.map(({ layer, hex }) => {
      const file = path.join(work, hex);
      const download = slot(async () => {
        await downloadBlob(client, input.repository, layer, file, { onProgress: (done) => progress.update(layer.digest.slice(7, 19), done) });
        return file;
      });
      // Awaited in layer order below; a later failure must not go unhandled meanwhile.
      download.catch(() => undefined);
      return download;
    });
    const outcomes: LayerOutcome[] = [];
    for (const [index, { layer, path: where }] of layers.entries()) {
      if (present[index]) {
        log.info(`layer ${index + 1}/${layers.length} ${layer.digest}: already in ${publisher.fqrn} at ${where}`);
        outcomes.push({ digest: layer.digest, size: layer.size, path: where, state: 'already there' });
        continue;
      }
      const file = await downloads[missing.findIndex((m) => m.layer === layer)]!;
      await ingestLayer(publisher, layer, file, where);
      await rm(file, { force: true });
      log.info(`layer ${index + 1}/${layers.length} ${layer.digest}: published at ${where}`);
      outcomes.push({ digest: layer.digest, size: layer.size, path: where, state: 'published' });
    }
    progress.done();

    const origin = `${inputName}@${image.manifestDigest}`;
    const thinJson: ThinDescriptor = {
      version: '1.0',
      origin,
      layers: layers.map(({ hex, path: where }) => ({ digest: hex, url: `cvmfs://${publisher.fqrn}/${where}` })),
    };
    const thin = await buildThinImage(thinJson, image.configBytes, origin);
    const result: MakeThinResult = { input: inputName, manifestDigest: image.manifestDigest, repository: publisher.fqrn, layers: outcomes, thinJson, configDigest: sha256Digest(thin.config) };
    const outputName = formatImageReference(output);
    if (options.outputFile || options.load) {
      const archive = await dockerArchive(thin, outputName);
      if (options.outputFile) {
        await writeFile(options.outputFile, archive);
        result.outputFile = options.outputFile;
        log.info(`wrote ${options.outputFile} (docker load -i it)`);
      }
      if (options.load) {
        result.loaded = await loadIntoDocker(archive);
        log.info(result.loaded || `loaded ${outputName} into the Docker daemon`);
      }
    }
    if (options.push) {
      const target = RegistryClient.forReference(output, { registryUrl: options.registry });
      await pushBlob(target, output.repository, { digest: sha256Digest(thin.config), size: thin.config.length }, thin.config);
      await pushBlob(target, output.repository, { digest: sha256Digest(thin.layerGzip), size: thin.layerGzip.length }, thin.layerGzip);
      const digest = await pushManifest(target, output.repository, output.tag ?? 'latest', thin.manifest, DOCKER_MANIFEST);
      result.pushed = `${outputName}@${digest}`;
      log.info(`pushed ${result.pushed}`);
    }
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
    await publisher.close();
  }
}

async function ingestLayer(publisher: LayerPublisher, layer: Descriptor, file: string, where: string): Promise<void> {
  const tar = createReadStream(file).pipe(decompressLayer(layer.mediaType));
  try {
    await publisher.ingest(where, tar);
  } catch (error) {
    throw new Error(`publishing layer ${layer.digest} at ${where}: ${(error as Error).message}`);
  }
}
