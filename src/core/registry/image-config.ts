// The image configuration blob (Docker image JSON / OCI image config): the platform, the
// runtime defaults a thin image has to carry over, and the uncompressed layer digests.
import { digestProblem } from './digest.ts';
import { RegistryError } from './errors.ts';
import { isObject, parseJsonObject } from './manifest.ts';
import type { Platform } from './platform.ts';

/** The `config` section; Docker's field names, as `docker image inspect` shows them. */
export interface ContainerConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
  Labels?: Record<string, string>;
  /** Keys like `80/tcp`; Docker's JSON maps each to {}. */
  ExposedPorts?: string[];
  /** Keys are mount points; Docker's JSON maps each to {}. */
  Volumes?: string[];
}

export interface ImageConfig {
  platform: Platform;
  config: ContainerConfig;
  /** `rootfs.diff_ids`: sha256 of each layer's uncompressed tar, in layer order. */
  diffIds: string[];
}

export function parseImageConfig(bytes: Uint8Array, what: string): ImageConfig {
  const fail = (why: string): never => {
    throw new RegistryError('bad-config', `${what}: ${why}`);
  };
  const json = parseJsonObject(bytes, fail);
  const { os, architecture, variant, rootfs } = json;
  if (typeof os !== 'string' || typeof architecture !== 'string') return fail('"os" and "architecture" must be strings');
  if (!isObject(rootfs) || !Array.isArray(rootfs.diff_ids)) return fail('"rootfs.diff_ids" is missing');
  const diffIds = rootfs.diff_ids.map((id: unknown, index: number) => {
    const problem = typeof id === 'string' ? digestProblem(id) : 'not a string';
    return problem === undefined ? (id as string) : fail(`"rootfs.diff_ids[${index}]": ${problem}`);
  });
  const platform: Platform = typeof variant === 'string' && variant !== '' ? { os, architecture, variant } : { os, architecture };
  return { platform, config: parseContainerConfig(json.config, fail), diffIds };
}

function parseContainerConfig(value: unknown, fail: (why: string) => never): ContainerConfig {
  // Images built FROM scratch without any settings have "config": null or none at all.
  if (value === undefined || value === null) return {};
  if (!isObject(value)) return fail('"config" is not an object');
  const result: ContainerConfig = {};
  for (const field of ['Env', 'Cmd', 'Entrypoint'] as const) {
    const list = value[field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) fail(`"config.${field}" is not a list of strings`);
    result[field] = list as string[];
  }
  for (const field of ['WorkingDir', 'User', 'StopSignal'] as const) {
    const text = value[field];
    if (text === undefined || text === null || text === '') continue;
    if (typeof text !== 'string') fail(`"config.${field}" is not a string`);
    result[field] = text as string;
  }
  const labels = value.Labels;
  if (labels !== undefined && labels !== null) {
    if (!isObject(labels) || !Object.values(labels).every((label) => typeof label === 'string')) fail('"config.Labels" is not a map of strings');
    result.Labels = labels as Record<string, string>;
  }
  for (const field of ['ExposedPorts', 'Volumes'] as const) {
    const set = value[field];
    if (set === undefined || set === null) continue;
    if (!isObject(set)) fail(`"config.${field}" is not an object`);
    result[field] = Object.keys(set as object);
  }
  return result;
}
