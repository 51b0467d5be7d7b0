// Reads a repository from HTTP mirrors with the client's failover rules: servers are tried in
// order from the last one that worked; proxy groups are tried in order, proxies inside a group
// in a random (load-balancing) order; a failing proxy moves on to the next proxy, a failing
// server (or bad data from it) to the next server.
import http from 'node:http';
import https from 'node:https';
import { log } from '../log.ts';
import { CvmfsError, describeError, isCvmfsError } from './errors.ts';
import { HttpGetError, httpGet } from './http-get.ts';
import type { BodyConsumer, ObjectSource } from './object-source.ts';
import type { Proxy } from './server-list.ts';

export interface HttpSourceOptions {
  /** Repository base URLs (CVMFS_SERVER_URL with @fqrn@ already expanded). */
  servers: readonly URL[];
  /** Proxy groups (CVMFS_HTTP_PROXY); null = DIRECT. Default: [[DIRECT]]. */
  proxyGroups?: readonly (readonly Proxy[])[];
  /** Silence after which a request through a proxy is given up (CVMFS_TIMEOUT). */
  proxyTimeoutMs?: number | undefined;
  /** The same without a proxy (CVMFS_TIMEOUT_DIRECT). */
  directTimeoutMs?: number | undefined;
}

// The client's defaults for CVMFS_TIMEOUT and CVMFS_TIMEOUT_DIRECT.
export const DEFAULT_PROXY_TIMEOUT_MS = 5_000;
export const DEFAULT_DIRECT_TIMEOUT_MS = 10_000;

export class HttpSource implements ObjectSource {
  readonly description: string;
  readonly #servers: readonly URL[];
  /** Proxies in failover order: group by group, each group shuffled once for load balancing. */
  readonly #proxies: readonly Proxy[];
  readonly #proxyTimeoutMs: number;
  readonly #directTimeoutMs: number;
  readonly #agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  // Sticky choices, as in the client: keep using what worked last.
  #serverIndex = 0;
  #proxyIndex = 0;

  constructor(options: HttpSourceOptions) {
    if (options.servers.length === 0) throw new CvmfsError('config', 'no server URL configured');
    this.#servers = options.servers;
    this.#proxies = (options.proxyGroups ?? [[null]]).flatMap((group) => shuffled(group));
    if (this.#proxies.length === 0) throw new CvmfsError('config', 'empty proxy list; use DIRECT for no proxy');
    if (this.#proxies.some((proxy) => proxy !== null) && this.#servers.some((server) => server.protocol === 'https:')) {
      throw new CvmfsError('unsupported', 'https:// servers through an HTTP proxy are not supported; use http:// server URLs or DIRECT');
    }
    this.#proxyTimeoutMs = options.proxyTimeoutMs ?? DEFAULT_PROXY_TIMEOUT_MS;
    this.#directTimeoutMs = options.directTimeoutMs ?? DEFAULT_DIRECT_TIMEOUT_MS;
    this.description = this.#servers.map((server) => server.href).join(';');
  }

  async fetch<T>(relativePath: string, consume: BodyConsumer<T>): Promise<T> {
    const failures: string[] = [];
    let onlyBadData = true;
    for (let p = 0; p < this.#proxies.length; p++) {
      const proxyIndex = (this.#proxyIndex + p) % this.#proxies.length;
      const proxy = this.#proxies[proxyIndex]!;
      let proxyFailed = false;
      for (let s = 0; s < this.#servers.length && !proxyFailed; s++) {
        const serverIndex = (this.#serverIndex + s) % this.#servers.length;
        const url = new URL(`${this.#servers[serverIndex]!.href.replace(/\/$/, '')}/${relativePath}`);
        const where = proxy === null ? url.href : `${url.href} via proxy ${proxy.host}`;
        // Bad data through a proxy may be a stale cached copy: ask once more, bypassing caches.
        for (const noCache of proxy === null ? [false] : [false, true]) {
          try {
            const result = await this.#fetchOnce(url, proxy, noCache, consume);
            if (failures.length > 0) log.warn(`cvmfs: ${relativePath} came from ${where} after failures:\n  ${failures.join('\n  ')}`);
            this.#serverIndex = serverIndex;
            this.#proxyIndex = proxyIndex;
            return result;
          } catch (error) {
            // Errors from `consume` already start with the URL; say it once.
            const reason = describeError(error).replace(`${url.href}: `, '');
            failures.push(`${where}${noCache ? ' (no-cache)' : ''}: ${reason}`);
            const badData = isCvmfsError(error, 'bad-data');
            onlyBadData &&= badData;
            proxyFailed = error instanceof HttpGetError && error.atProxy;
            if (!badData) break;
          }
        }
      }
    }
    throw new CvmfsError(
      onlyBadData ? 'bad-data' : 'unreachable',
      `cannot get a good copy of ${relativePath} from any server. Tried:\n  ${failures.join('\n  ')}\n` +
        (onlyBadData
          ? 'Every copy failed verification; the repository or a cache in front of it is damaged.'
          : 'Check that the servers in CVMFS_SERVER_URL are up and the proxies in CVMFS_HTTP_PROXY are reachable.'),
    );
  }

  async #fetchOnce<T>(url: URL, proxy: Proxy, noCache: boolean, consume: BodyConsumer<T>): Promise<T> {
    const response = await httpGet(url, { proxy, noCache, timeoutMs: proxy === null ? this.#directTimeoutMs : this.#proxyTimeoutMs, agents: this.#agents });
    try {
      return await consume(response, url.href);
    } finally {
      // A body left half-read (rejected copy) must not keep the connection busy.
      if (!response.complete) response.destroy();
    }
  }

  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
