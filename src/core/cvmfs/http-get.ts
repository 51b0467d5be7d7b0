// One HTTP GET, directly or through a forward proxy, resolving once a 200 response has started.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Proxy } from './server-list.ts';

export interface HttpGetOptions {
  proxy: Proxy;
  /** Abort when the connection is silent this long (connecting, waiting or mid-body). */
  timeoutMs: number;
  /** Ask caches on the way (proxies) for a fresh copy, as the client does after bad data. */
  noCache: boolean;
  agents: { http: http.Agent; https: https.Agent };
}

/** The request failed; `atProxy` when no HTTP answer came back from the proxy itself. */
export class HttpGetError extends Error {
  readonly atProxy: boolean;

  constructor(message: string, atProxy: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpGetError';
    this.atProxy = atProxy;
  }
}

export function httpGet(url: URL, options: HttpGetOptions): Promise<IncomingMessage> {
  const headers: Record<string, string> = { 'user-agent': 'cvmfs-graphdriver' };
  if (options.noCache) {
    headers['cache-control'] = 'no-cache';
    headers.pragma = 'no-cache';
  }
  let request: http.ClientRequest;
  const { proxy } = options;
  if (proxy === null) {
    const module = url.protocol === 'https:' ? https : http;
    request = module.request(url, { headers, agent: url.protocol === 'https:' ? options.agents.https : options.agents.http });
  } else {
    // A forward proxy takes the absolute URL as the request target (RFC 9112 §3.2.2).
    if (proxy.username !== '') {
      const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
    }
    headers.host = url.host;
    request = http.request({
      host: proxy.hostname,
      port: proxy.port === '' ? 80 : Number(proxy.port),
      path: url.href,
      headers,
      agent: options.agents.http,
    });
  }
  return new Promise((resolve, reject) => {
    let answered = false;
    request.setTimeout(options.timeoutMs, () => {
      request.destroy(new Error(`no data for ${options.timeoutMs} ms`));
    });
    request.on('error', (error) => {
      if (!answered) reject(new HttpGetError(error.message, proxy !== null, { cause: error }));
    });
    request.on('response', (response) => {
      answered = true;
      if (response.statusCode === 200) {
        resolve(response);
        return;
      }
      response.resume(); // Drain so the connection can be reused.
      reject(new HttpGetError(`HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trim(), false));
    });
    request.end();
  });
}
