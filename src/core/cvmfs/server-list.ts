// CVMFS_SERVER_URL and CVMFS_HTTP_PROXY as the client understands them.
import { CvmfsError } from './errors.ts';

/** A proxy URL, or null for DIRECT (no proxy). */
export type Proxy = URL | null;

/**
 * "http://a/cvmfs/@fqrn@;http://b/cvmfs/@fqrn@" → base URLs tried in order. `@fqrn@` is the
 * repository name and `@org@` its first label (as in the client).
 */
export function expandServerUrls(value: string | readonly string[], fqrn: string): URL[] {
  const org = fqrn.split('.')[0]!;
  const entries = typeof value === 'string' ? value.split(';') : value;
  const urls = entries
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const expanded = entry.replaceAll('@fqrn@', fqrn).replaceAll('@org@', org).replace(/\/+$/, '');
      let url;
      try {
        url = new URL(expanded);
      } catch {
        throw new CvmfsError('config', `server URL "${entry}" is not a URL`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new CvmfsError('config', `server URL "${entry}" must be http:// or https:// (use a directory for local repositories)`);
      }
      return url;
    });
  if (urls.length === 0) throw new CvmfsError('config', 'no server URL configured (CVMFS_SERVER_URL is empty)');
  return urls;
}

/**
 * "p1|p2;p3;DIRECT" → [[p1, p2], [p3], [DIRECT]]: groups are tried in order (failover), proxies
 * within a group share the load. Unset or empty means DIRECT.
 */
export function parseProxyGroups(value: string | undefined): Proxy[][] {
  const groups = (value ?? '')
    .split(';')
    .map((group) =>
      group
        .split('|')
        .map((entry) => entry.trim())
        .filter((entry) => entry !== '')
        .map(parseProxy),
    )
    .filter((group) => group.length > 0);
  return groups.length === 0 ? [[null]] : groups;
}

function parseProxy(entry: string): Proxy {
  if (entry.toUpperCase() === 'DIRECT') return null;
  if (entry === 'auto') throw new CvmfsError('unsupported', 'CVMFS_HTTP_PROXY "auto" (WPAD/PAC discovery) is not supported; list proxies explicitly');
  let url;
  try {
    url = new URL(entry.includes('://') ? entry : `http://${entry}`);
  } catch {
    throw new CvmfsError('config', `proxy "${entry}" is not a URL`);
  }
  if (url.protocol !== 'http:') throw new CvmfsError('config', `proxy "${entry}" must be an http:// proxy`);
  return url;
}
