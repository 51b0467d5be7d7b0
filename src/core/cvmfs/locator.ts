import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadClientConfig, repositoryOptionsFromConfig, DEFAULT_CONFIG_ROOT } from './config.ts';
import { CvmfsError } from './errors.ts';
import { keyFiles } from './publish/keys.ts';
import { CONFIG_FILE, readPublisherConfig } from './publish/layout.ts';
import type { RepositoryOptions } from './repository.ts';

// How commands name a repository: a fully qualified name configured in /etc/cvmfs (as cvmfs2
// is told), a publisher directory (which knows its name and key), or an HTTP(S) base URL or
// storage directory with the public key given explicitly.

/**
 * Our cache format is not the real client's, so it never shares CVMFS_CACHE_BASE with cvmfs2;
 * it is shared by every repository this tool mounts.
 */
export const DEFAULT_CACHE_DIR = '/var/lib/cvmfs-graphdriver/cache';
export const DEFAULT_CACHE_MB = 4000;

export interface RepositoryLocator {
  /** FQRN, http(s):// base URL (…/cvmfs/<fqrn>), publisher directory, or storage directory. */
  repository: string;
  /** Needed when the URL's or directory's last component is not the name. */
  fqrn?: string;
  /** Public master key file(s), ':'-separated. */
  key?: string;
  /** Where an FQRN's configuration lives (default /etc/cvmfs). */
  configRoot?: string;
  cacheDir?: string;
  cacheMb?: number;
  /** CVMFS_HTTP_PROXY syntax. */
  proxy?: string;
}

function isUrl(text: string): boolean {
  return /^https?:\/\//.test(text);
}

function isDirectory(text: string): boolean {
  return (text.startsWith('/') || text.startsWith('.')) && existsSync(text) && statSync(text).isDirectory();
}

export async function resolveRepository(locator: RepositoryLocator): Promise<RepositoryOptions> {
  const cache = { directory: locator.cacheDir ?? DEFAULT_CACHE_DIR, maxBytes: (locator.cacheMb ?? DEFAULT_CACHE_MB) * 1024 * 1024 };
  const { repository } = locator;
  if (isDirectory(repository) && existsSync(path.join(repository, CONFIG_FILE))) {
    const { config, paths } = await readPublisherConfig(repository);
    return { fqrn: config.fqrn, location: { directory: paths.storage }, publicKeys: locator.key ?? keyFiles(paths.keys, config.fqrn).publicKey, cache };
  }
  if (isUrl(repository) || isDirectory(repository)) {
    const fqrn = locator.fqrn ?? path.basename(repository.replace(/\/+$/, ''));
    if (!locator.key) {
      throw new CvmfsError('config', `reading ${repository} needs the repository's public key: pass --key <file.pub>`);
    }
    const location = isUrl(repository)
      ? { serverUrls: [repository.replace(/\/+$/, '')], httpProxy: locator.proxy }
      : { directory: path.resolve(repository) };
    return { fqrn, location, publicKeys: locator.key, cache };
  }
  if (!/^[a-z0-9.-]+\.[a-z0-9.-]+$/.test(repository)) {
    throw new CvmfsError('config', `${JSON.stringify(repository)} is neither a repository name (like unpacked.cern.ch), an http(s) URL nor a directory`);
  }
  const config = await loadClientConfig(repository, locator.configRoot ?? DEFAULT_CONFIG_ROOT);
  const options = repositoryOptionsFromConfig(config);
  if (locator.proxy !== undefined && 'serverUrls' in options.location) options.location.httpProxy = locator.proxy;
  if (options.publicKeys.length === 0 && !locator.key) {
    throw new CvmfsError('config', `no public key for ${repository}: put it in ${locator.configRoot ?? DEFAULT_CONFIG_ROOT}/keys or pass --key`);
  }
  return { ...options, publicKeys: locator.key ?? options.publicKeys, cache };
}
