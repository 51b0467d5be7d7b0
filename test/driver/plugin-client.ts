// Speaks the graphdriver plugin protocol over a unix socket the way dockerd 20.10 does
// (shared/docs/dockerd-e2e-observations.md §2): POST only, no Content-Type, Go's json.Encoder
// body ending in "\n", an empty body for Activate, a chunked raw tar for ApplyDiff, and
// keep-alive connections.

import http from 'node:http';
import type { TestContext } from 'node:test';
import { PLUGIN_ACCEPT_TYPE } from '../../src/driver/protocol.ts';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class PluginClient {
  readonly socketPath: string;
  readonly agent = new http.Agent({ keepAlive: true });

  constructor(socketPath: string, t?: TestContext) {
    this.socketPath = socketPath;
    t?.after(() => this.agent.destroy());
  }

  /** Starts a POST and returns the request, for callers that stream the body or the reply. */
  open(route: string, headers: Record<string, string | number> = {}): http.ClientRequest {
    const request = http.request({
      socketPath: this.socketPath,
      agent: this.agent,
      method: 'POST',
      path: route,
      headers: { Host: '', 'User-Agent': 'Go-http-client/1.1', Accept: PLUGIN_ACCEPT_TYPE, ...headers },
    });
    return request;
  }

  /** A JSON call; `undefined` sends the empty body of Plugin.Activate. */
  async call(method: string, body?: unknown): Promise<Reply> {
    const data = body === undefined ? Buffer.alloc(0) : Buffer.from(`${JSON.stringify(body)}\n`);
    const request = this.open(`/${method}`, { 'Content-Length': data.length });
    const reply = response(request);
    request.end(data);
    return collect(await reply);
  }

  /** A JSON call that must succeed; returns the parsed reply. */
  async ok<T = Record<string, unknown>>(method: string, body?: unknown): Promise<T> {
    const reply = await this.call(method, body);
    if (reply.status !== 200) throw new Error(`${method} -> ${reply.status} ${reply.body.toString()}`);
    const parsed = JSON.parse(reply.body.toString()) as T & { Err?: string };
    if (parsed.Err) throw new Error(`${method} -> Err ${parsed.Err}`);
    return parsed;
  }

  /** ApplyDiff as dockerd sends it: query built without escaping, the tar chunked. */
  async applyDiff(id: string, parent: string, tar: AsyncIterable<Buffer> | Buffer): Promise<Reply> {
    const request = this.open(`/GraphDriver.ApplyDiff?id=${id}&parent=${parent}`);
    const reply = response(request);
    const pieces = Buffer.isBuffer(tar) ? split(tar, 16 * 1024) : tar;
    try {
      for await (const piece of pieces) {
        if (!request.write(piece)) await new Promise((resolve) => request.once('drain', resolve));
      }
      request.end();
    } catch (err) {
      request.destroy(err as Error);
    }
    return collect(await reply);
  }

  /** Diff: the raw reply, so the tar can be streamed on. */
  async diffStream(id: string, parent?: string): Promise<http.IncomingMessage> {
    const data = Buffer.from(`${JSON.stringify(parent ? { ID: id, Parent: parent } : { ID: id })}\n`);
    const request = this.open('/GraphDriver.Diff', { 'Content-Length': data.length });
    const reply = response(request);
    request.end(data);
    return reply;
  }
}

function* split(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

function response(request: http.ClientRequest): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
  });
}

export async function collect(message: http.IncomingMessage): Promise<Reply> {
  const pieces: Buffer[] = [];
  for await (const piece of message) pieces.push(piece as Buffer);
  return { status: message.statusCode ?? 0, headers: message.headers, body: Buffer.concat(pieces) };
}

export function json(reply: Reply): Record<string, unknown> {
  return JSON.parse(reply.body.toString()) as Record<string, unknown>;
}
