// Manifests as registries serve them: an image manifest (config + layers) or an index / manifest
// list (one manifest per platform), in the Docker schema 2 or OCI spelling. Only the fields the
// client uses are kept; anything malformed among them is refused with the manifest named.
import { digestProblem } from './digest.ts';
import { RegistryError } from './errors.ts';
import { IMAGE_MANIFEST_TYPES, INDEX_TYPES } from './media-types.ts';
import type { Platform } from './platform.ts';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface IndexEntry extends Descriptor {
  /** Absent on entries that are not images for a platform (e.g. attestations). */
  platform: Platform | undefined;
}

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: IndexEntry[];
}

export type Manifest = ImageManifest | ImageIndex;

const SCHEMA1_TYPES = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];

/** Parses manifest bytes; `contentType` is the response's, used when the JSON omits mediaType (OCI allows that). */
export function parseManifest(bytes: Uint8Array, contentType: string | null, what: string): Manifest {
  const fail = (why: string, code: 'bad-manifest' | 'unsupported' = 'bad-manifest'): never => {
    throw new RegistryError(code, `${what}: ${why}`);
  };
  const json = parseJsonObject(bytes, fail);
  // A registry may send a generic Content-Type (application/json) for a manifest without mediaType.
  const headerType = contentType?.split(';')[0]!.trim() ?? '';
  const headerNamesManifest = [...IMAGE_MANIFEST_TYPES, ...INDEX_TYPES, ...SCHEMA1_TYPES].includes(headerType);
  const mediaType = typeof json.mediaType === 'string' ? json.mediaType : headerNamesManifest ? headerType : inferMediaType(json);
  if (json.schemaVersion === 1 || SCHEMA1_TYPES.includes(mediaType)) {
    fail('schema 1 manifests (deprecated since 2017) are not supported; push the image again with a current client', 'unsupported');
  }
  if (json.schemaVersion !== 2) fail(`schemaVersion ${JSON.stringify(json.schemaVersion)} is not 2`);

  if (IMAGE_MANIFEST_TYPES.includes(mediaType)) {
    if (!Array.isArray(json.layers)) fail('"layers" is not an array');
    return {
      kind: 'manifest',
      mediaType,
      config: parseDescriptor(json.config, 'config', fail),
      layers: (json.layers as unknown[]).map((layer, index) => parseDescriptor(layer, `layers[${index}]`, fail)),
    };
  }
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(json.manifests)) fail('"manifests" is not an array');
    return {
      kind: 'index',
      mediaType,
      manifests: (json.manifests as unknown[]).map((entry, index) => ({
        ...parseDescriptor(entry, `manifests[${index}]`, fail),
        platform: parsePlatformField((entry as Record<string, unknown>).platform, `manifests[${index}].platform`, fail),
      })),
    };
  }
  return fail(`media type ${JSON.stringify(mediaType)} is not an image manifest or index`, 'unsupported');
}

function inferMediaType(json: Record<string, unknown>): string {
  if (Array.isArray(json.manifests)) return INDEX_TYPES[1]!;
  if (Array.isArray(json.layers)) return IMAGE_MANIFEST_TYPES[1]!;
  return 'unknown';
}

function parseDescriptor(value: unknown, field: string, fail: (why: string) => never): Descriptor {
  if (!isObject(value)) return fail(`"${field}" is not an object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || mediaType === '') fail(`"${field}.mediaType" is missing`);
  if (typeof digest !== 'string') return fail(`"${field}.digest" is missing`);
  const problem = digestProblem(digest);
  if (problem !== undefined) fail(`"${field}.digest": ${problem}`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`"${field}.size" is not a byte count`);
  return { mediaType: mediaType as string, digest, size: size as number };
}

function parsePlatformField(value: unknown, field: string, fail: (why: string) => never): Platform | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') {
    return fail(`"${field}" needs "os" and "architecture" strings`);
  }
  const { os, architecture, variant } = value;
  return typeof variant === 'string' && variant !== '' ? { os, architecture, variant } : { os, architecture };
}

/** The bytes as a JSON object, or `fail` saying why not. */
export function parseJsonObject(bytes: Uint8Array, fail: (why: string) => never): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return fail('not JSON');
  }
  return isObject(json) ? json : fail('not a JSON object');
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
