// From a reference to everything make-thin needs before touching layers: the image manifest
// for one platform (through the index when the tag names one), its digests and its config.
import { readBlob } from './blob-reader.ts';
import type { RegistryClient } from './client.ts';
import { RegistryError } from './errors.ts';
import { parseImageConfig, type ImageConfig } from './image-config.ts';
import type { ImageManifest } from './manifest.ts';
import { fetchManifest } from './manifest-fetch.ts';
import { CONFIG_TYPES } from './media-types.ts';
import { formatPlatform, hostPlatform, platformMatches, selectPlatform, type Platform } from './platform.ts';
import { formatImageReference, manifestSelector, type ImageReference } from './reference.ts';

export interface ResolvedImage {
  /** Digest of the index or manifest list the reference named, when it named one. */
  indexDigest: string | undefined;
  /** Digest of the image manifest (the one for the chosen platform). */
  manifestDigest: string;
  manifest: ImageManifest;
  /** The manifest as served, e.g. to push it on unchanged. */
  manifestBytes: Buffer;
  config: ImageConfig;
  configBytes: Buffer;
}

export interface ResolveOptions {
  /** The platform to pick from an index; default the host's. A single-platform image must match it when given. */
  platform?: Platform;
}

export async function resolveImage(client: RegistryClient, reference: ImageReference, options: ResolveOptions = {}): Promise<ResolvedImage> {
  const { repository } = reference;
  const name = formatImageReference(reference);
  const wanted = options.platform ?? hostPlatform();
  const first = await fetchManifest(client, repository, manifestSelector(reference));

  let indexDigest: string | undefined;
  let image = first;
  if (first.manifest.kind === 'index') {
    indexDigest = first.digest;
    const entries = first.manifest.manifests;
    const chosen = entries[selectPlatform(wanted, entries.map((entry) => entry.platform))];
    if (chosen === undefined) {
      const available = entries.flatMap((entry) => (entry.platform ? [formatPlatform(entry.platform)] : [])).join(', ') || 'none';
      throw new RegistryError('no-matching-platform', `${name} has no image for ${formatPlatform(wanted)}; available: ${available} (choose one with --platform)`);
    }
    image = await fetchManifest(client, repository, chosen.digest, chosen);
  }
  const { manifest } = image;
  if (manifest.kind !== 'manifest') {
    throw new RegistryError('unsupported', `${name}: manifest ${image.digest} is an index inside an index, which is not supported`);
  }

  const configWhat = `${client.registry}: config ${manifest.config.digest} of ${name}`;
  if (!CONFIG_TYPES.includes(manifest.config.mediaType)) {
    throw new RegistryError('unsupported', `${configWhat}: media type ${manifest.config.mediaType} is not an image config`);
  }
  const configBytes = await readBlob(client, repository, manifest.config);
  const config = parseImageConfig(configBytes, configWhat);
  if (config.diffIds.length !== manifest.layers.length) {
    const counts = `${config.diffIds.length} layer diff IDs for the manifest's ${manifest.layers.length} layers`;
    throw new RegistryError('bad-config', `${configWhat}: lists ${counts}`);
  }
  if (indexDigest === undefined && options.platform !== undefined && !platformMatches(options.platform, config.platform)) {
    const [has, asked] = [formatPlatform(config.platform), formatPlatform(options.platform)];
    throw new RegistryError('no-matching-platform', `${name} is a single-platform image for ${has}, not ${asked}`);
  }
  return { indexDigest, manifestDigest: image.digest, manifest, manifestBytes: image.bytes, config, configBytes };
}
