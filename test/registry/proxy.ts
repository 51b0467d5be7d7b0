// A reverse proxy in front of the test registry that records every request and lets a test
// intercept some: alter the bytes of a response, cut a connection midway, refuse a token or
// redirect elsewhere. The Host header is passed on unchanged, so the URLs the registry builds
// (upload locations) point back at the proxy.
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Stoppable } from '../helpers/process.ts';

export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. /v2/x/blobs/sha256:… */
  path: string;
  headers: IncomingHttpHeaders;
}

/** Sends the request on to the registry, with `headers` replacing (undefined: removing) some. */
export type Forward = (headers?: Record<string, string | undefined>) => Promise<IncomingMessage>;

/** Handles a request itself and returns true, or returns false to let the proxy forward it. */
export type Interceptor = (request: IncomingMessage, response: ServerResponse, forward: Forward) => Promise<boolean>;

export interface TestProxy extends Stoppable {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** 127.0.0.1:<port> */
  readonly host: string;
  readonly requests: ProxiedRequest[];
  intercept: Interceptor | undefined;
}

export async function startProxy(target: string): Promise<TestProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const server: Server = createServer((request, response) => {
    requests.push({ method: request.method ?? '', path: request.url ?? '', headers: request.headers });
    const forward: Forward = (overrides = {}) =>
      new Promise((resolve, reject) => {
        const headers: IncomingHttpHeaders = { ...request.headers };
        for (const [name, value] of Object.entries(overrides)) {
          if (value === undefined) delete headers[name];
          else headers[name] = value;
        }
        const outgoing = httpRequest({ host: upstream.hostname, port: upstream.port, method: request.method, path: request.url, headers }, resolve);
        outgoing.on('error', reject);
        request.pipe(outgoing);
      });
    void (async () => {
      if (await proxy.intercept?.(request, response, forward)) return;
      relay(await forward(), response);
    })().catch((error: Error) => {
      if (!response.headersSent) response.writeHead(502).end(error.message);
      else response.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  // Requests reach the handler above only after this, so it always finds `proxy` set.
  const proxy: TestProxy = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    intercept: undefined,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return proxy;
}

/** Passes an upstream response on unchanged. */
export function relay(upstream: IncomingMessage, response: ServerResponse): void {
  response.writeHead(upstream.statusCode ?? 502, upstream.headers);
  upstream.pipe(response);
}

export async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}
