// Layer blobs to tar streams: the compression follows from the layer's media type (Docker's
// gzip layers; OCI layers plain, +gzip or +zstd).
import type { Transform } from 'node:stream';
import { PassThrough } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { RegistryError } from './errors.ts';
import {
  DOCKER_FOREIGN_LAYER_GZIP,
  DOCKER_LAYER_GZIP,
  OCI_LAYER,
  OCI_LAYER_GZIP,
  OCI_LAYER_ZSTD,
  OCI_NONDISTRIBUTABLE_LAYER,
  OCI_NONDISTRIBUTABLE_LAYER_GZIP,
  OCI_NONDISTRIBUTABLE_LAYER_ZSTD,
} from './media-types.ts';

export type LayerCompression = 'none' | 'gzip' | 'zstd';

// zlib's default 16 KiB output pieces cost the reading thread a thread-pool round trip, and a
// wakeup, per 16 KiB of tar: in 256 KiB pieces make-thin took a tenth less CPU and a third of
// the context switches (bench/make-thin.ts on two cores).
const OUTPUT_PIECE = 256 * 1024;

const COMPRESSION_BY_MEDIA_TYPE: ReadonlyMap<string, LayerCompression> = new Map<string, LayerCompression>([
  [DOCKER_LAYER_GZIP, 'gzip'],
  [DOCKER_FOREIGN_LAYER_GZIP, 'gzip'],
  [OCI_LAYER, 'none'],
  [OCI_LAYER_GZIP, 'gzip'],
  [OCI_LAYER_ZSTD, 'zstd'],
  [OCI_NONDISTRIBUTABLE_LAYER, 'none'],
  [OCI_NONDISTRIBUTABLE_LAYER_GZIP, 'gzip'],
  [OCI_NONDISTRIBUTABLE_LAYER_ZSTD, 'zstd'],
]);

export function layerCompression(mediaType: string): LayerCompression {
  const compression = COMPRESSION_BY_MEDIA_TYPE.get(mediaType);
  if (compression === undefined) throw new RegistryError('unsupported', `layer media type ${JSON.stringify(mediaType)} is not a tar layer this client knows`);
  return compression;
}

/** A stream turning the layer blob into its tar (a pass-through for uncompressed layers). */
export function decompressLayer(mediaType: string): Transform {
  switch (layerCompression(mediaType)) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return createGunzip({ chunkSize: OUTPUT_PIECE });
    case 'zstd':
      return createZstdDecompress({ chunkSize: OUTPUT_PIECE });
  }
}
