// Where a registry's API lives: Docker Hub's hostname differs from its name in references,
// loopback registries speak plain HTTP (as Docker treats 127.0.0.0/8 as insecure), and
// docker2cvmfs's --registry flag names a base URL directly.
import { RegistryError } from './errors.ts';
import { DOCKER_HUB } from './reference.ts';

const DOCKER_HUB_API = 'https://registry-1.docker.io';

export interface RegistryEndpoint {
  /** The registry's name: `docker.io` or `host[:port]`; credentials are looked up under it. */
  registry: string;
  /** Base URL without the `/v2` suffix, e.g. `http://127.0.0.1:5000`. */
  baseUrl: URL;
}

/**
 * The endpoint for a registry named in a reference, or for `registryUrl` when given (like
 * docker2cvmfs's --registry: `http://127.0.0.1:5000`, with or without a trailing `/v2`). An
 * override serves the reference's repository path as it is, as a Docker Hub mirror would.
 */
export function resolveEndpoint(registry: string, registryUrl?: string): RegistryEndpoint {
  if (registryUrl !== undefined) {
    const baseUrl = parseRegistryUrl(registryUrl);
    return { registry: baseUrl.host, baseUrl };
  }
  if (registry === DOCKER_HUB) return { registry, baseUrl: new URL(DOCKER_HUB_API) };
  const scheme = isLoopback(hostOf(registry)) ? 'http' : 'https';
  return { registry, baseUrl: new URL(`${scheme}://${registry}`) };
}

function parseRegistryUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RegistryError('invalid-argument', `--registry ${JSON.stringify(text)} is not a URL (e.g. https://registry.example.org or http://127.0.0.1:5000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RegistryError('invalid-argument', `--registry ${JSON.stringify(text)}: only http:// and https:// are supported`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new RegistryError('invalid-argument', `--registry ${JSON.stringify(text)}: give only scheme, host, port and path (credentials come from Docker's config)`);
  }
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '');
  return url;
}

function hostOf(registry: string): string {
  return registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:\d+$/, '');
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
