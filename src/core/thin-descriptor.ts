// thin.json: the single file of a thin image, naming the image's real layers in CernVM-FS.
// Version 1.0 is what the upstream plugin, docker2cvmfs and DUCC write and read:
//   {"version":"1.0","origin":"…","layers":[{"digest":"<64 hex>","url":"cvmfs://<repo>/<path>"}]}
// with layers base first. A layer holding this file at its root is a thin layer.

export const THIN_DESCRIPTOR_NAME = 'thin.json';
export const THIN_DESCRIPTOR_VERSION = '1.0';

/** Larger descriptors are refused before parsing: a real one is a few KiB. */
export const MAX_DESCRIPTOR_BYTES = 1024 * 1024;
/** Docker refuses images deeper than this, and each layer becomes one overlay lower dir. */
export const MAX_THIN_LAYERS = 125;

export interface ThinLayer {
  /** sha256 of the compressed registry blob, 64 hex digits without `sha256:`. */
  digest: string;
  /** `cvmfs://<repository>/<path inside it>`. */
  url: string;
}

export interface ThinDescriptor {
  version: string;
  origin?: string;
  layers: ThinLayer[];
}

export interface CvmfsLocation {
  repository: string;
  /** Path inside the repository, without a leading slash. */
  path: string;
}

export class ThinDescriptorError extends Error {}

const DIGEST = /^[0-9a-f]{64}$/;
// A CernVM-FS repository name is a fully qualified domain name.
const REPOSITORY = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;
const MAX_URL_LENGTH = 4096;

export function parseCvmfsUrl(url: string): CvmfsLocation {
  const fail = (why: string): never => {
    throw new ThinDescriptorError(`layer url ${JSON.stringify(url)} ${why}`);
  };
  if (url.length > MAX_URL_LENGTH) fail(`is longer than ${MAX_URL_LENGTH} characters`);
  if (!url.startsWith('cvmfs://')) fail('must start with cvmfs://');
  const rest = url.slice('cvmfs://'.length);
  const slash = rest.indexOf('/');
  const repository = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  if (!REPOSITORY.test(repository)) fail(`names repository ${JSON.stringify(repository)}, which is not a fully qualified name like unpacked.cern.ch`);
  if (path === '') fail('names no path inside the repository');
  if (/[\x00-\x1f\x7f\\]/.test(path)) fail('has control characters or backslashes in its path');
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') fail('has an empty, "." or ".." path component');
  }
  return { repository, path };
}

/** Parses and checks a thin.json; every problem is reported with what to fix. */
export function parseThinDescriptor(bytes: Buffer | string): ThinDescriptor {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (size > MAX_DESCRIPTOR_BYTES) throw new ThinDescriptorError(`thin.json is ${size} bytes, more than the ${MAX_DESCRIPTOR_BYTES} allowed`);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString());
  } catch (err) {
    throw new ThinDescriptorError(`thin.json is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ThinDescriptorError('thin.json must hold a JSON object');
  const record = value as Record<string, unknown>;
  if (record.version !== THIN_DESCRIPTOR_VERSION) {
    throw new ThinDescriptorError(`thin.json version ${JSON.stringify(record.version)} is not supported; only "${THIN_DESCRIPTOR_VERSION}" is (re-create the image with make-thin)`);
  }
  if (record.origin !== undefined && typeof record.origin !== 'string') throw new ThinDescriptorError('thin.json "origin" must be a string');
  if (!Array.isArray(record.layers)) throw new ThinDescriptorError('thin.json must have a "layers" array');
  if (record.layers.length > MAX_THIN_LAYERS) throw new ThinDescriptorError(`thin.json lists ${record.layers.length} layers; at most ${MAX_THIN_LAYERS} are allowed`);
  const layers = record.layers.map((layer: unknown, index: number): ThinLayer => {
    const entry = (typeof layer === 'object' && layer !== null ? layer : {}) as Record<string, unknown>;
    if (typeof entry.digest !== 'string' || !DIGEST.test(entry.digest)) {
      throw new ThinDescriptorError(`thin.json layer ${index}: "digest" must be 64 lowercase hex digits (no "sha256:" prefix)`);
    }
    if (typeof entry.url !== 'string') throw new ThinDescriptorError(`thin.json layer ${index}: "url" must be a cvmfs:// URL`);
    try {
      parseCvmfsUrl(entry.url);
    } catch (err) {
      throw new ThinDescriptorError(`thin.json layer ${index}: ${(err as Error).message}`);
    }
    return { digest: entry.digest, url: entry.url };
  });
  return { version: THIN_DESCRIPTOR_VERSION, ...(record.origin !== undefined ? { origin: record.origin as string } : {}), layers };
}

/** The file as upstream writers format it (two-space indent), so both read each other's. */
export function formatThinDescriptor(descriptor: ThinDescriptor): string {
  parseThinDescriptor(JSON.stringify(descriptor));
  const ordered = { version: descriptor.version, ...(descriptor.origin !== undefined ? { origin: descriptor.origin } : {}), layers: descriptor.layers.map((l) => ({ digest: l.digest, url: l.url })) };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}
