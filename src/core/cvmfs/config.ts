// A site's client configuration, read like the cvmfs client reads /etc/cvmfs: later files
// override earlier ones, in this order:
//   default.conf, default.d/*.conf, default.local,
//   domain.d/<domain>.conf, domain.d/<domain>.local, config.d/<fqrn>.conf, config.d/<fqrn>.local
// The files are shell assignments; the client sources them with bash. We understand the subset
// sites use: KEY=value, optional "export", quotes, comments and $VAR / ${VAR} references to
// earlier settings. Command substitution and other shell features are not evaluated.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectCacheOptions } from './cache.ts';
import { CvmfsError, describeError } from './errors.ts';
import { DEFAULT_DIRECT_TIMEOUT_MS, DEFAULT_PROXY_TIMEOUT_MS } from './http-source.ts';
import type { RepositoryOptions } from './repository.ts';

export const DEFAULT_CONFIG_ROOT = '/etc/cvmfs';

export interface ClientConfig {
  fqrn: string;
  /** Every setting after all files were read. */
  settings: Readonly<Record<string, string>>;
  /** CVMFS_SERVER_URL entries (";"-separated, @fqrn@ not yet expanded). */
  serverUrls: string[];
  /** CVMFS_HTTP_PROXY as written; unset means DIRECT. */
  httpProxy: string | undefined;
  /** Public master key files: CVMFS_PUBLIC_KEY, else every *.pub in CVMFS_KEYS_DIR, else in <root>/keys. */
  publicKeys: string[];
  cache: ObjectCacheOptions;
  proxyTimeoutMs: number;
  directTimeoutMs: number;
  /** Lines of <root>/blacklist (certificate fingerprints to refuse). */
  blacklist: string[];
}

export async function loadClientConfig(fqrn: string, configRoot: string = DEFAULT_CONFIG_ROOT): Promise<ClientConfig> {
  const domain = fqrn.slice(fqrn.indexOf('.') + 1);
  const defaultD = join(configRoot, 'default.d');
  const files = [
    join(configRoot, 'default.conf'),
    ...(await listFiles(defaultD, '.conf')),
    join(configRoot, 'default.local'),
    join(configRoot, 'domain.d', `${domain}.conf`),
    join(configRoot, 'domain.d', `${domain}.local`),
    join(configRoot, 'config.d', `${fqrn}.conf`),
    join(configRoot, 'config.d', `${fqrn}.local`),
  ];
  const settings: Record<string, string> = {};
  for (const file of files) {
    const text = await readOptional(file);
    if (text !== null) parseShellAssignments(text, settings, file);
  }

  let publicKeys: string[];
  if (settings.CVMFS_PUBLIC_KEY !== undefined) publicKeys = settings.CVMFS_PUBLIC_KEY.split(':').filter((path) => path !== '');
  else publicKeys = await listFiles(settings.CVMFS_KEYS_DIR ?? join(configRoot, 'keys'), '.pub');

  const cacheBase = settings.CVMFS_CACHE_BASE ?? '/var/lib/cvmfs';
  const quotaMb = numberSetting(settings, 'CVMFS_QUOTA_LIMIT', 4000);
  const blacklist = ((await readOptional(join(configRoot, 'blacklist'))) ?? '').split('\n').map((line) => line.trim()).filter((line) => line !== '');
  return {
    fqrn,
    settings,
    serverUrls: (settings.CVMFS_SERVER_URL ?? '').split(';').map((url) => url.trim()).filter((url) => url !== ''),
    httpProxy: settings.CVMFS_HTTP_PROXY,
    publicKeys,
    cache: {
      // A shared cache (the default) serves every repository from one directory.
      directory: settings.CVMFS_SHARED_CACHE === 'no' ? join(cacheBase, fqrn) : join(cacheBase, 'shared'),
      maxBytes: quotaMb < 0 ? Number.MAX_SAFE_INTEGER : quotaMb * 1024 * 1024,
    },
    proxyTimeoutMs: numberSetting(settings, 'CVMFS_TIMEOUT', DEFAULT_PROXY_TIMEOUT_MS / 1000) * 1000,
    directTimeoutMs: numberSetting(settings, 'CVMFS_TIMEOUT_DIRECT', DEFAULT_DIRECT_TIMEOUT_MS / 1000) * 1000,
    blacklist,
  };
}

/** What Repository.open needs to read the configured repository over HTTP. */
export function repositoryOptionsFromConfig(config: ClientConfig): RepositoryOptions {
  if (config.serverUrls.length === 0) throw new CvmfsError('config', `no CVMFS_SERVER_URL configured for ${config.fqrn}`);
  return {
    fqrn: config.fqrn,
    location: {
      serverUrls: config.serverUrls,
      httpProxy: config.httpProxy,
      proxyTimeoutMs: config.proxyTimeoutMs,
      directTimeoutMs: config.directTimeoutMs,
    },
    publicKeys: config.publicKeys,
    cache: config.cache,
    blacklist: config.blacklist,
  };
}

const ASSIGNMENT = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/;

/** Applies the assignments in `text` to `settings` (values may refer to earlier ones). */
export function parseShellAssignments(text: string, settings: Record<string, string>, file: string): void {
  for (const [index, rawLine] of text.split('\n').entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = ASSIGNMENT.exec(line);
    if (match === null) throw new CvmfsError('config', `${file}:${index + 1}: cannot understand "${line}" (expected KEY=value)`);
    settings[match[1]!] = parseValue(match[2]!, settings, `${file}:${index + 1}`);
  }
}

function parseValue(raw: string, settings: Readonly<Record<string, string>>, where: string): string {
  let value = '';
  let at = 0;
  while (at < raw.length) {
    const char = raw[at]!;
    if (char === "'") {
      const end = raw.indexOf("'", at + 1);
      if (end < 0) throw new CvmfsError('config', `${where}: unterminated single quote`);
      value += raw.slice(at + 1, end);
      at = end + 1;
    } else if (char === '"') {
      const end = raw.indexOf('"', at + 1);
      if (end < 0) throw new CvmfsError('config', `${where}: unterminated double quote`);
      value += expandVariables(raw.slice(at + 1, end), settings);
      at = end + 1;
    } else if (/\s/.test(char)) {
      // Unquoted whitespace ends the value; only a comment may follow.
      const rest = raw.slice(at).trim();
      if (rest !== '' && !rest.startsWith('#')) throw new CvmfsError('config', `${where}: unquoted space in value "${raw}"`);
      break;
    } else {
      const end = raw.slice(at).search(/['"\s]/);
      const word = end < 0 ? raw.slice(at) : raw.slice(at, at + end);
      value += expandVariables(word, settings);
      at += word.length;
    }
  }
  return value;
}

function expandVariables(text: string, settings: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_match, braced?: string, bare?: string) => settings[(braced ?? bare)!] ?? '');
}

function numberSetting(settings: Readonly<Record<string, string>>, key: string, fallback: number): number {
  const value = settings[key];
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new CvmfsError('config', `${key}=${value} is not a number`);
  return number;
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CvmfsError('config', `cannot read ${file}: ${describeError(error)}`, { cause: error });
  }
}

/** Files in `directory` ending in `suffix`, sorted; none if the directory does not exist. */
async function listFiles(directory: string, suffix: string): Promise<string[]> {
  try {
    return (await readdir(directory)).filter((name) => name.endsWith(suffix)).sort().map((name) => join(directory, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CvmfsError('config', `cannot list ${directory}: ${describeError(error)}`, { cause: error });
  }
}
