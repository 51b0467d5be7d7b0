// Small test images built in memory (layers of a few files, a config, manifests in Docker or OCI
// spelling, optionally a multi-platform index) and written in skopeo's `dir:` layout, which
// test/helpers/registry.ts pushes. Every digest is known before the push, and skopeo's
// --preserve-digests keeps the bytes, so tests can check what comes back exactly.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { encodeHeader } from '../../src/core/tar/header-encoder.ts';
import { paddingAfter } from '../../src/core/tar/ustar.ts';
import {
  DOCKER_CONFIG,
  DOCKER_LAYER_GZIP,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER,
  OCI_LAYER_GZIP,
  OCI_LAYER_ZSTD,
  OCI_MANIFEST,
} from '../../src/core/registry/media-types.ts';
import type { Platform } from '../../src/core/registry/platform.ts';
import { sha256Digest } from '../../src/core/registry/digest.ts';

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface TestLayer extends Blob {
  /** The uncompressed tar. */
  tar: Buffer;
}

export interface TestImage {
  platform: Platform;
  layers: TestLayer[];
  config: Blob;
  manifest: Blob;
}

export interface TestImageSpec {
  platform?: Platform;
  /** Each layer's files: path → content. */
  layers: Array<Record<string, string | Buffer>>;
  /** `docker`: schema 2 with gzip layers; `oci`: OCI types with the given compression. */
  format?: 'docker' | 'oci';
  compression?: 'gzip' | 'zstd' | 'none';
  env?: string[];
  cmd?: string[];
}

const OCI_LAYER_TYPES = { gzip: OCI_LAYER_GZIP, zstd: OCI_LAYER_ZSTD, none: OCI_LAYER } as const;

function blobOf(mediaType: string, bytes: Buffer): Blob {
  return { mediaType, digest: sha256Digest(bytes), size: bytes.length, bytes };
}

function descriptorOf(blob: Blob): { mediaType: string; digest: string; size: number } {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
}

export function buildTestImage(spec: TestImageSpec): TestImage {
  const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
  const format = spec.format ?? 'oci';
  const compression = format === 'docker' ? 'gzip' : (spec.compression ?? 'gzip');
  const layers = spec.layers.map((files) => {
    const tar = tarOf(files);
    const compressed = compression === 'gzip' ? gzipSync(tar) : compression === 'zstd' ? zstdCompressSync(tar) : tar;
    const mediaType = format === 'docker' ? DOCKER_LAYER_GZIP : OCI_LAYER_TYPES[compression];
    return { ...blobOf(mediaType, compressed), tar };
  });
  const config = blobOf(
    format === 'docker' ? DOCKER_CONFIG : OCI_CONFIG,
    Buffer.from(
      JSON.stringify({
        ...platform,
        config: { Env: spec.env ?? ['PATH=/bin'], Cmd: spec.cmd ?? ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: layers.map((layer) => sha256Digest(layer.tar)) },
        history: [],
      }),
    ),
  );
  const manifestType = format === 'docker' ? DOCKER_MANIFEST : OCI_MANIFEST;
  const manifest = blobOf(
    manifestType,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: manifestType, config: descriptorOf(config), layers: layers.map(descriptorOf) }, null, 2)),
  );
  return { platform, layers, config, manifest };
}

export interface TestIndex {
  index: Blob;
  images: TestImage[];
}

/** A manifest list (docker) or image index (oci) over the images. */
export function buildIndex(images: TestImage[], format: 'docker' | 'oci' = 'oci'): TestIndex {
  const mediaType = format === 'docker' ? DOCKER_MANIFEST_LIST : OCI_INDEX;
  const manifests = images.map((image) => ({ ...descriptorOf(image.manifest), platform: image.platform }));
  return { index: blobOf(mediaType, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }, null, 2))), images };
}

/** A tar of regular files, as a layer holds them. */
export function tarOf(files: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [path, content] of Object.entries(files)) {
    const body = Buffer.from(content);
    parts.push(
      encodeHeader({
        path,
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        uname: 'root',
        gname: 'root',
        size: body.length,
        mtime: 1577836800,
        linkname: '',
        devmajor: 0,
        devminor: 0,
        xattrs: new Map(),
      }),
      body,
      Buffer.alloc(paddingAfter(body.length)),
    );
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/**
 * Writes `content` in skopeo's `dir:` layout (manifest.json, one file per blob named by its hex
 * digest, `<hex>.manifest.json` for the manifests of an index), which unlike an OCI layout also
 * carries Docker media types.
 */
export async function writeImageDirectory(dir: string, content: TestImage | TestIndex): Promise<void> {
  await mkdir(dir, { recursive: true });
  const hexOf = (blob: Blob): string => blob.digest.slice('sha256:'.length);
  const images = 'index' in content ? content.images : [content];
  await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  await writeFile(join(dir, 'manifest.json'), 'index' in content ? content.index.bytes : content.manifest.bytes);
  for (const image of images) {
    if ('index' in content) await writeFile(join(dir, `${hexOf(image.manifest)}.manifest.json`), image.manifest.bytes);
    for (const blob of [...image.layers, image.config]) await writeFile(join(dir, hexOf(blob)), blob.bytes);
  }
}
