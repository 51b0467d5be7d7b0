// Pulling from a real registry (docker-registry 2.8, images pushed by skopeo with their
// digests kept): manifests by tag and by digest in Docker and OCI form, platform selection
// from an index or manifest list, config and blobs, to files and to streams.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { downloadBlob, openBlob, readBlob } from '../../src/core/registry/blob-reader.ts';
import { RegistryClient } from '../../src/core/registry/client.ts';
import { isRegistryError } from '../../src/core/registry/errors.ts';
import { decompressLayer } from '../../src/core/registry/layer-decompression.ts';
import { fetchManifest } from '../../src/core/registry/manifest-fetch.ts';
import { parsePlatform } from '../../src/core/registry/platform.ts';
import { parseImageReference } from '../../src/core/registry/reference.ts';
import { resolveImage } from '../../src/core/registry/resolve-image.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { FAST_RETRY, seed, tempDir, testClient } from './fixtures.ts';
import { readAll } from './proxy.ts';
import { buildIndex, buildTestImage, type TestImage } from './test-images.ts';

const dockerImage = buildTestImage({
  format: 'docker',
  layers: [{ 'etc/os-release': 'ID=test\n' }, { 'bin/tool': 'x'.repeat(100_000), 'etc/motd': 'hi\n' }],
  env: ['PATH=/usr/bin', 'LANG=C'],
  cmd: ['/bin/tool', '--serve'],
});
const zstdImage = buildTestImage({ compression: 'zstd', layers: [{ a: 'zstd layer' }] });
const plainImage = buildTestImage({ compression: 'none', layers: [{ a: 'uncompressed layer' }] });
const amd64 = buildTestImage({ layers: [{ arch: 'amd64' }] });
const arm64 = buildTestImage({ layers: [{ arch: 'arm64' }], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
const multi = buildIndex([amd64, arm64]);
const armv7 = buildTestImage({ format: 'docker', layers: [{ arch: 'armv7' }], platform: { os: 'linux', architecture: 'arm', variant: 'v7' } });
const amd64Docker = buildTestImage({ format: 'docker', layers: [{ arch: 'amd64 docker' }] });
const list = buildIndex([amd64Docker, armv7], 'docker');

let registry: TestRegistry;
let client: RegistryClient;
let workDir: string;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'registry-pull-'));
  registry = await startRegistry();
  await seed(registry, workDir, 'test/docker:v1', dockerImage);
  await seed(registry, workDir, 'test/zstd:v1', zstdImage);
  await seed(registry, workDir, 'test/plain:v1', plainImage);
  await seed(registry, workDir, 'test/multi:v1', multi);
  await seed(registry, workDir, 'test/list:v1', list);
  client = testClient(registry.host);
});
after(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

function reference(name: string) {
  return parseImageReference(`${registry.host}/${name}`);
}

function assertResolvedAs(resolved: Awaited<ReturnType<typeof resolveImage>>, image: TestImage): void {
  assert.equal(resolved.manifestDigest, image.manifest.digest);
  assert.deepEqual(resolved.manifestBytes, image.manifest.bytes);
  assert.deepEqual(resolved.configBytes, image.config.bytes);
  assert.deepEqual(
    resolved.manifest.layers,
    image.layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  );
  assert.deepEqual(resolved.config.platform, image.platform);
}

describe('manifests and configs', () => {
  test('by tag: a Docker schema 2 image, its digest and its config', async () => {
    const resolved = await resolveImage(client, reference('test/docker:v1'));
    assertResolvedAs(resolved, dockerImage);
    assert.equal(resolved.indexDigest, undefined);
    assert.equal(resolved.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.deepEqual(resolved.config.config, { Env: ['PATH=/usr/bin', 'LANG=C'], Cmd: ['/bin/tool', '--serve'] });
    assert.deepEqual(resolved.config.diffIds.length, 2);
  });

  test('by digest, and by tag and digest (the digest wins)', async () => {
    const byDigest = await resolveImage(client, reference(`test/docker@${dockerImage.manifest.digest}`));
    assertResolvedAs(byDigest, dockerImage);
    const both = await resolveImage(client, reference(`test/docker:no-such-tag@${dockerImage.manifest.digest}`));
    assertResolvedAs(both, dockerImage);
  });

  test('an OCI index: the requested platform, with "" and v8 alike for arm64', async () => {
    const forArm = await resolveImage(client, reference('test/multi:v1'), { platform: parsePlatform('linux/arm64') });
    assertResolvedAs(forArm, arm64);
    assert.equal(forArm.indexDigest, multi.index.digest);
    const forAmd = await resolveImage(client, reference('test/multi:v1'), { platform: parsePlatform('linux/amd64') });
    assertResolvedAs(forAmd, amd64);
    const byIndexDigest = await resolveImage(client, reference(`test/multi@${multi.index.digest}`), { platform: parsePlatform('linux/arm64/v8') });
    assertResolvedAs(byIndexDigest, arm64);
  });

  test('a Docker manifest list with a variant', async () => {
    const resolved = await resolveImage(client, reference('test/list:v1'), { platform: parsePlatform('linux/arm/v7') });
    assertResolvedAs(resolved, armv7);
    assert.equal(resolved.indexDigest, list.index.digest);
  });

  test('a platform the index lacks is an error listing the ones it has', async () => {
    await assert.rejects(
      resolveImage(client, reference('test/multi:v1'), { platform: parsePlatform('linux/s390x') }),
      (error) =>
        isRegistryError(error, 'no-matching-platform') &&
        error.message.includes('has no image for linux/s390x; available: linux/amd64, linux/arm64/v8'),
    );
    await assert.rejects(
      resolveImage(client, reference('test/list:v1'), { platform: parsePlatform('linux/arm/v6') }),
      (error) => isRegistryError(error, 'no-matching-platform') && error.message.includes('available: linux/amd64, linux/arm/v7'),
    );
  });

  test('a single-platform image must match a platform asked for explicitly', async () => {
    await assert.rejects(
      resolveImage(client, reference('test/docker:v1'), { platform: parsePlatform('linux/arm64') }),
      (error) => isRegistryError(error, 'no-matching-platform') && error.message.includes('single-platform image for linux/amd64'),
    );
  });

  test('an unknown tag or repository is not-found, naming the manifest', async () => {
    await assert.rejects(
      fetchManifest(client, 'test/docker', 'v2'),
      (error) => isRegistryError(error, 'not-found') && error.message.includes(`${registry.host}: manifest test/docker:v2: 404`) && /MANIFEST_UNKNOWN/.test(error.message),
    );
    await assert.rejects(resolveImage(client, reference('test/nothing:v1')), (error) => isRegistryError(error, 'not-found'));
  });

  test('--registry: a reference without a registry, served by a base URL ending in /v2', async () => {
    const viaOverride = RegistryClient.forReference(parseImageReference('test/docker:v1'), {
      registryUrl: `${registry.baseUrl}/v2`,
      retry: FAST_RETRY,
    });
    assert.equal(viaOverride.registry, registry.host);
    assertResolvedAs(await resolveImage(viaOverride, parseImageReference('test/docker:v1')), dockerImage);
  });
});

describe('blobs', () => {
  test('to a file, verified, with progress up to the size', async (context) => {
    const dir = await tempDir(context, 'download');
    const layer = dockerImage.layers[1]!;
    const progress: Array<[number, number]> = [];
    const path = join(dir, 'layer');
    await downloadBlob(client, 'test/docker', layer, path, { onProgress: (done, total) => progress.push([done, total]) });
    assert.deepEqual(await readFile(path), layer.bytes);
    assert.deepEqual(await readdir(dir), ['layer']);
    assert.deepEqual(progress[0], [0, layer.size]);
    assert.deepEqual(progress.at(-1), [layer.size, layer.size]);
    assert.ok(progress.every(([done], index) => index === 0 || done >= progress[index - 1]![0]));
  });

  test('as streams, decompressed to the layer tar for gzip, zstd and uncompressed layers', async () => {
    const cases: Array<[repository: string, image: TestImage]> = [
      ['test/docker', dockerImage],
      ['test/zstd', zstdImage],
      ['test/plain', plainImage],
    ];
    for (const [repository, image] of cases) {
      for (const layer of image.layers) {
        const tar = new PassThrough();
        const [, content] = await Promise.all([pipeline(openBlob(client, repository, layer), decompressLayer(layer.mediaType), tar), readAll(tar)]);
        assert.deepEqual(content, layer.tar, `${repository} ${layer.digest}`);
      }
    }
  });

  test('into memory, with a size limit', async () => {
    assert.deepEqual(await readBlob(client, 'test/docker', dockerImage.config), dockerImage.config.bytes);
    const layer = dockerImage.layers[1]!;
    await assert.rejects(readBlob(client, 'test/docker', layer, layer.size - 1), (error) => isRegistryError(error, 'unsupported'));
  });

  test('a blob the registry does not have is not-found, and leaves no file', async (context) => {
    const dir = await tempDir(context, 'missing');
    const missing = { digest: `sha256:${'0'.repeat(64)}`, size: 10 };
    await assert.rejects(downloadBlob(client, 'test/docker', missing, join(dir, 'x')), (error) => isRegistryError(error, 'not-found') && error.message.includes(missing.digest));
    assert.deepEqual(await readdir(dir), []);
  });
});
