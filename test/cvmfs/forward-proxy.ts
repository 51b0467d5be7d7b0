// A minimal HTTP forward proxy (absolute-URI requests) for failover tests. It records what it
// forwarded and can serve corrupted bodies, like a proxy holding a stale, damaged copy.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ForwardedRequest {
  url: string;
  noCache: boolean;
}

export interface ForwardProxy {
  readonly url: string;
  readonly requests: ForwardedRequest[];
  stop(): Promise<void>;
}

/** `corrupt(request)`: whether to flip a byte of this response's body. */
export async function startForwardProxy(corrupt: (request: ForwardedRequest) => boolean = () => false): Promise<ForwardProxy> {
  const requests: ForwardedRequest[] = [];
  const server = http.createServer((request, response) => {
    const forwarded = { url: request.url ?? '', noCache: request.headers['cache-control'] === 'no-cache' };
    requests.push(forwarded);
    const upstream = http.get(forwarded.url, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        if (corrupt(forwarded) && body.length > 0) body[body.length - 1]! ^= 0xff;
        response.writeHead(answer.statusCode ?? 502, { 'content-length': body.length });
        response.end(body);
      });
    });
    upstream.on('error', () => {
      response.writeHead(502);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
