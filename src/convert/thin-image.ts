import { gzipSync } from 'node:zlib';
import { PassThrough } from 'node:stream';
import { sha256Digest } from '../core/registry/digest.ts';
import { DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST } from '../core/registry/media-types.ts';
import { tarHeader } from '../core/tar/entry.ts';
import { TarWriter } from '../core/tar/writer.ts';
import { formatThinDescriptor, THIN_DESCRIPTOR_NAME, type ThinDescriptor } from '../core/thin-descriptor.ts';

// The thin image: one layer holding thin.json, and the original image's config (Env, every Cmd
// element, Entrypoint, WorkingDir, User, ports, volumes, labels, stop signal, healthcheck …)
// with its rootfs replaced, so `docker run` of it behaves like the original.

/** Label on every thin image naming the image it was made from. */
export const ORIGIN_LABEL = 'org.cvmfs.graphdriver.origin';

export interface ThinImage {
  /** The uncompressed layer tar (docker-archive and docker load take this). */
  layerTar: Buffer;
  /** The same, gzip-compressed (registries take this). */
  layerGzip: Buffer;
  /** The image config, serialized. */
  config: Buffer;
  /** A Docker schema2 manifest naming config and layer by digest. */
  manifest: Buffer;
}

async function tarOfDescriptor(descriptor: ThinDescriptor): Promise<Buffer> {
  const content = Buffer.from(formatThinDescriptor(descriptor));
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const writer = new TarWriter(out);
  // Fixed owner, mode and time: the same descriptor always gives the same layer digest.
  await writer.add(tarHeader({ path: THIN_DESCRIPTOR_NAME, size: content.length }), content);
  await writer.finish();
  return Buffer.concat(chunks);
}

export async function buildThinImage(descriptor: ThinDescriptor, originalConfig: Buffer, origin: string): Promise<ThinImage> {
  const layerTar = await tarOfDescriptor(descriptor);
  const layerGzip = gzipSync(layerTar, { level: 9 });
  const original = JSON.parse(originalConfig.toString('utf8')) as Record<string, unknown>;
  const containerConfig = { ...((original.config ?? {}) as Record<string, unknown>) };
  containerConfig.Labels = { ...((containerConfig.Labels ?? {}) as Record<string, string>), [ORIGIN_LABEL]: origin };
  const config = {
    ...original,
    config: containerConfig,
    rootfs: { type: 'layers', diff_ids: [sha256Digest(layerTar)] },
    history: [{ created: original.created ?? new Date(0).toISOString(), created_by: `cvmfs-graphdriver make-thin from ${origin}` }],
  };
  // container_config describes the build step of the original's last layer, not this image.
  delete (config as Record<string, unknown>).container_config;
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest = {
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: DOCKER_CONFIG, size: configBytes.length, digest: sha256Digest(configBytes) },
    layers: [{ mediaType: DOCKER_LAYER_GZIP, size: layerGzip.length, digest: sha256Digest(layerGzip) }],
  };
  return { layerTar, layerGzip, config: configBytes, manifest: Buffer.from(JSON.stringify(manifest)) };
}

/**
 * The thin image as a docker-archive (`docker load -i`, or the Engine API's /images/load):
 * manifest.json, the config and the layer.
 */
export async function dockerArchive(image: ThinImage, repoTag: string): Promise<Buffer> {
  const configName = `${sha256Digest(image.config).slice('sha256:'.length)}.json`;
  const layerDir = sha256Digest(image.layerTar).slice('sha256:'.length);
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: [`${layerDir}/layer.tar`] }]));
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const writer = new TarWriter(out);
  await writer.add(tarHeader({ path: `${layerDir}/`, type: 'directory', mode: 0o755 }));
  await writer.add(tarHeader({ path: `${layerDir}/layer.tar`, size: image.layerTar.length }), image.layerTar);
  await writer.add(tarHeader({ path: configName, size: image.config.length }), image.config);
  await writer.add(tarHeader({ path: 'manifest.json', size: manifest.length }), manifest);
  await writer.finish();
  return Buffer.concat(chunks);
}
