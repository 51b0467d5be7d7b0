import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { log } from '../core/log.ts';
import type { OverlayDriver } from './overlay-driver.ts';
import type { ActivateResponse, InitRequest, LayerRequest } from './protocol.ts';
import { GRAPHDRIVER_INTERFACE } from './protocol.ts';

// The plugin's HTTP face: dockerd POSTs JSON (without a Content-Type) to /<Method> on a unix
// socket and reads JSON back, except Diff (a tar stream out) and ApplyDiff (a tar stream in).
// Errors are HTTP 500 with {"Err": "..."}, which dockerd shows as "<Method>: <Err>".

type JsonHandler = (body: LayerRequest & InitRequest) => Promise<unknown>;

async function readJson(request: http.IncomingMessage): Promise<LayerRequest & InitRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {} as LayerRequest & InitRequest;
  try {
    return JSON.parse(text) as LayerRequest & InitRequest;
  } catch (err) {
    throw new Error(`malformed JSON request body: ${(err as Error).message}`);
  }
}

function sendJson(response: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  response.writeHead(status, { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}

function jsonRoutes(driver: OverlayDriver): Map<string, JsonHandler> {
  return new Map<string, JsonHandler>([
    ['/Plugin.Activate', async () => ({ Implements: [GRAPHDRIVER_INTERFACE] }) satisfies ActivateResponse],
    ['/GraphDriver.Init', async (body) => { await driver.init(body); return {}; }],
    ['/GraphDriver.Capabilities', async () => ({ Capabilities: { ReproducesExactDiffs: false } })],
    ['/GraphDriver.Create', async (body) => { await driver.create(body, 'ro'); return {}; }],
    ['/GraphDriver.CreateReadWrite', async (body) => { await driver.create(body, 'rw'); return {}; }],
    ['/GraphDriver.Remove', async (body) => { await driver.remove(body); return {}; }],
    ['/GraphDriver.Get', async (body) => ({ Dir: await driver.get(body) })],
    ['/GraphDriver.Put', async (body) => { await driver.put(body); return {}; }],
    ['/GraphDriver.Exists', async (body) => ({ Exists: await driver.exists(body) })],
    ['/GraphDriver.Status', async () => ({ Status: await driver.status() })],
    ['/GraphDriver.GetMetadata', async (body) => ({ Metadata: await driver.metadata(body) })],
    ['/GraphDriver.Cleanup', async () => { await driver.cleanup(); return {}; }],
    ['/GraphDriver.Changes', async (body) => ({ Changes: await driver.changes(body) })],
    ['/GraphDriver.DiffSize', async (body) => ({ Size: await driver.diffSize(body) })],
  ]);
}

async function handleDiff(driver: OverlayDriver, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  const body = await readJson(request);
  // Headers go out with the first tar bytes: a failure before that is still a clean 500, and a
  // failure after it cuts the connection so dockerd sees a broken stream, never a short tar.
  let started = false;
  const out = new PassThrough();
  out.once('data', () => { started = true; });
  out.pipe(response);
  response.setHeader('Content-Type', 'application/x-tar');
  try {
    await driver.diff(body, out);
    out.end();
  } catch (err) {
    if (!started && !response.headersSent) {
      out.unpipe(response);
      sendJson(response, 500, { Err: `diff of layer ${body.ID}: ${(err as Error).message}` });
    } else {
      log.error(`diff of layer ${body.ID} failed after sending data: ${(err as Error).message}`);
      response.destroy(err as Error);
    }
  }
}

async function handleApplyDiff(driver: OverlayDriver, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  // dockerd builds the query with Sprintf, unescaped; layer ids need no escaping.
  const query = new URL(request.url ?? '', 'http://plugin').searchParams;
  const id = query.get('id') ?? '';
  const size = await driver.applyDiff(id, query.get('parent') ?? '', request);
  sendJson(response, 200, { Size: size });
}

export interface DriverServer {
  close(): Promise<void>;
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (inUse) throw new Error(`${socketPath} is in use by another process; stop it or choose another --socket`);
  await fs.rm(socketPath, { force: true });
}

export async function serveDriver(driver: OverlayDriver, socketPath: string): Promise<DriverServer> {
  const routes = jsonRoutes(driver);
  const server = http.createServer(async (request, response) => {
    const started = Date.now();
    const route = (request.url ?? '').split('?')[0]!;
    try {
      if (route === '/GraphDriver.Diff') {
        await handleDiff(driver, request, response);
      } else if (route === '/GraphDriver.ApplyDiff') {
        await handleApplyDiff(driver, request, response);
      } else {
        const handler = routes.get(route);
        if (!handler) {
          // 404 tells dockerd an optional call is not implemented (it then uses defaults).
          sendJson(response, 404, { Err: `unknown call ${route}` });
          return;
        }
        const body = await readJson(request);
        log.debug(`${route} ${JSON.stringify(body)}`);
        sendJson(response, 200, await handler(body));
      }
      log.debug(`${route} done in ${Date.now() - started} ms`);
    } catch (err) {
      const message = (err as Error).message;
      log.error(`${route}: ${message}`);
      if (!request.complete) request.resume();
      if (!response.headersSent) sendJson(response, 500, { Err: message });
      else response.destroy();
    }
  });
  // dockerd has no timeouts of its own on these calls; a large ApplyDiff can take many minutes.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 0;
  server.timeout = 0;

  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  await removeStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  log.info(`serving the graphdriver protocol on ${socketPath}`);
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
