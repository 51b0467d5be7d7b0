// Content that is not what was asked for, and connections that fail, between the client and a
// real registry (Basic auth), made so by a proxy: altered or extended blobs and manifests are
// refused with nothing left on disk, a dropped blob download resumes with a Range request, and a
// redirect to another origin (as to blob storage) carries no credentials there.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { downloadBlob, openBlob } from '../../src/core/registry/blob-reader.ts';
import type { RegistryClient } from '../../src/core/registry/client.ts';
import { isRegistryError } from '../../src/core/registry/errors.ts';
import { fetchManifest } from '../../src/core/registry/manifest-fetch.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { seed, tempDir, testClient } from './fixtures.ts';
import { readAll, relay, startProxy, type Interceptor, type TestProxy } from './proxy.ts';
import { buildTestImage } from './test-images.ts';

const USER = { username: 'alice', password: 's3cret' };
// Uncompressed random data: big enough to be cut midway, and the layer is exactly its bytes.
const image = buildTestImage({ compression: 'none', layers: [{ data: randomBytes(2 * 1024 * 1024) }] });
const layer = image.layers[0]!;
const BLOB_PATH = `/v2/test/big/blobs/${layer.digest}`;

let registry: TestRegistry;
let proxy: TestProxy;
let client: RegistryClient;
let workDir: string;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'registry-integrity-'));
  registry = await startRegistry({ basicAuth: USER });
  await seed(registry, workDir, 'test/big:v1', image);
  proxy = await startProxy(registry.baseUrl);
});
after(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});
beforeEach(async () => {
  proxy.intercept = undefined;
  client = testClient(proxy.host, { credentials: { kind: 'password', ...USER, source: 'the test' } });
  // Learn the registry's challenge first, so the requests under test are the authenticated ones.
  await fetchManifest(client, 'test/big', 'v1');
  proxy.requests.length = 0;
});

/** Intercepts GETs of `path` only. */
function on(path: string, handle: Interceptor): Interceptor {
  return async (request, response, forward) => request.method === 'GET' && request.url === path && handle(request, response, forward);
}

/** Serves the registry's answer with `alter` applied to its body. */
function altering(alter: (body: Buffer) => Buffer): Interceptor {
  return async (_request, response, forward) => {
    const upstream = await forward();
    const body = alter(await readAll(upstream));
    response.writeHead(upstream.statusCode!, { ...upstream.headers, 'content-length': String(body.length) });
    response.end(body);
    return true;
  };
}

function flipMiddleByte(body: Buffer): Buffer {
  const copy = Buffer.from(body);
  copy[copy.length >> 1]! ^= 0xff;
  return copy;
}

describe('altered content', () => {
  test('a blob with a flipped byte: an error, and no file (partial or not) left', async (context) => {
    proxy.intercept = on(BLOB_PATH, altering(flipMiddleByte));
    const dir = await tempDir(context, 'tampered');
    await assert.rejects(
      downloadBlob(client, 'test/big', layer, join(dir, 'layer')),
      (error) => isRegistryError(error, 'bad-digest') && error.message.includes(`content has digest sha256:`) && error.message.includes(`expected ${layer.digest}`),
    );
    assert.deepEqual(await readdir(dir), []);
  });

  test('a streamed blob with a flipped byte fails the stream instead of ending it', async () => {
    proxy.intercept = on(BLOB_PATH, altering(flipMiddleByte));
    let received = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback();
      },
    });
    await assert.rejects(pipeline(openBlob(client, 'test/big', layer), sink), (error) => isRegistryError(error, 'bad-digest'));
    assert.ok(sink.destroyed && !sink.writableFinished);
    assert.equal(received, layer.size);
  });

  test('a blob longer than its descriptor is refused as soon as it overflows', async (context) => {
    proxy.intercept = on(BLOB_PATH, altering((body) => Buffer.concat([body, Buffer.from('more')])));
    const dir = await tempDir(context, 'longer');
    await assert.rejects(
      downloadBlob(client, 'test/big', layer, join(dir, 'layer')),
      (error) => isRegistryError(error, 'bad-digest') && error.message.includes(`more than the expected ${layer.size} bytes`),
    );
    assert.deepEqual(await readdir(dir), []);
  });

  test('a manifest fetched by digest that does not hash to it', async () => {
    proxy.intercept = on(`/v2/test/big/manifests/${image.manifest.digest}`, altering((body) => Buffer.concat([body, Buffer.from('\n')])));
    await assert.rejects(
      fetchManifest(client, 'test/big', image.manifest.digest),
      (error) => isRegistryError(error, 'bad-digest') && error.message.includes(`manifest test/big@${image.manifest.digest}: content has digest`),
    );
  });

  test('a manifest fetched by tag that does not hash to the registry\'s Docker-Content-Digest', async () => {
    proxy.intercept = on('/v2/test/big/manifests/v1', altering((body) => Buffer.concat([body, Buffer.from('\n')])));
    await assert.rejects(
      fetchManifest(client, 'test/big', 'v1'),
      (error) => isRegistryError(error, 'bad-digest') && error.message.includes(`but the registry says ${image.manifest.digest}`),
    );
  });
});

describe('failing connections', () => {
  /** Passes on the first `bytes` of the first response for the blob, then drops the connection. */
  function cutOnce(bytes: number): Interceptor {
    let done = false;
    return on(BLOB_PATH, async (_request, response, forward) => {
      if (done) return false;
      done = true;
      const upstream = await forward();
      response.writeHead(upstream.statusCode!, upstream.headers);
      let sent = 0;
      for await (const chunk of upstream as AsyncIterable<Buffer>) {
        const part = chunk.subarray(0, bytes - sent);
        await new Promise((resolve) => response.write(part, resolve));
        sent += part.length;
        if (sent >= bytes) break;
      }
      response.socket!.destroy();
      return true;
    });
  }

  test('a download cut midway resumes from where it broke, with a Range request', async (context) => {
    const half = layer.size >> 1;
    proxy.intercept = cutOnce(half);
    const dir = await tempDir(context, 'resume');
    const progress: number[] = [];
    await downloadBlob(client, 'test/big', layer, join(dir, 'layer'), { onProgress: (done) => progress.push(done) });
    assert.deepEqual(await readFile(join(dir, 'layer')), layer.bytes);
    assert.deepEqual(await readdir(dir), ['layer']);

    const gets = proxy.requests.filter((request) => request.path === BLOB_PATH);
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.headers.range, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]!.headers.range ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= half, `resumed at ${gets[1]!.headers.range}`);
    assert.ok(progress.includes(resumedAt) && progress.at(-1) === layer.size);
  });

  test('a server that ignores Range on the resumed request: the bytes already had are skipped', async (context) => {
    const cut = cutOnce(layer.size >> 2);
    proxy.intercept = async (request, response, forward) => {
      if (await cut(request, response, forward)) return true;
      if (request.url !== BLOB_PATH) return false;
      relay(await forward({ range: undefined }), response);
      return true;
    };
    const dir = await tempDir(context, 'no-range');
    await downloadBlob(client, 'test/big', layer, join(dir, 'layer'));
    assert.deepEqual(await readFile(join(dir, 'layer')), layer.bytes);
  });

  test('a registry that keeps failing: the error after the last attempt', async (context) => {
    proxy.intercept = on(BLOB_PATH, async (_request, response) => {
      response.writeHead(503).end('overloaded');
      return true;
    });
    const dir = await tempDir(context, 'unavailable');
    await assert.rejects(
      downloadBlob(client, 'test/big', layer, join(dir, 'layer')),
      (error) => isRegistryError(error, 'unavailable') && error.message.includes('503 Service Unavailable (overloaded)'),
    );
    assert.equal(proxy.requests.filter((request) => request.path === BLOB_PATH).length, 3);
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('redirects', () => {
  test('a blob redirected to another origin is fetched there without the registry credentials', async (context) => {
    // The other origin stands for blob storage with a presigned URL: it needs no credentials
    // from the client and supplies its own to reach the registry.
    const storage = await startProxy(registry.baseUrl);
    context.after(() => storage.stop());
    storage.intercept = async (_request, response, forward) => {
      relay(await forward({ authorization: `Basic ${Buffer.from(`${USER.username}:${USER.password}`).toString('base64')}` }), response);
      return true;
    };
    proxy.intercept = on(BLOB_PATH, async (request, response) => {
      response.writeHead(307, { location: `${storage.url}${request.url}` }).end();
      return true;
    });
    const dir = await tempDir(context, 'redirect');
    await downloadBlob(client, 'test/big', layer, join(dir, 'layer'));
    assert.deepEqual(await readFile(join(dir, 'layer')), layer.bytes);
    const [atRegistry] = proxy.requests.filter((request) => request.path === BLOB_PATH);
    assert.match(atRegistry!.headers.authorization ?? '', /^Basic /);
    assert.deepEqual(
      storage.requests.map((request) => [request.path, request.headers.authorization]),
      [[BLOB_PATH, undefined]],
    );
  });
});
