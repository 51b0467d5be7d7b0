// Pushing to a real registry with token auth: blobs (from memory and from a file, skipped when
// present), manifests and an index under tags, read back with this client and with skopeo.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sha256Digest } from '../../src/core/registry/digest.ts';
import { isRegistryError } from '../../src/core/registry/errors.ts';
import { parsePlatform } from '../../src/core/registry/platform.ts';
import { blobExists, pushBlob, pushManifest } from '../../src/core/registry/push.ts';
import { parseImageReference } from '../../src/core/registry/reference.ts';
import { resolveImage } from '../../src/core/registry/resolve-image.ts';
import { run } from '../helpers/process.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { testClient } from './fixtures.ts';
import { buildIndex, buildTestImage, type TestImage } from './test-images.ts';

const BOB = { kind: 'password', username: 'bob', password: 'hunter2', source: 'the test' } as const;

let registry: TestRegistry;
let workDir: string;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'registry-push-'));
  registry = await startRegistry({ tokenAuth: { users: { bob: 'hunter2' } } });
});
after(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Pushes the image's layers (from files) and config (from memory), then its manifest under `tag`. */
async function pushImage(repository: string, tag: string, image: TestImage): Promise<string> {
  const client = testClient(registry.host, { credentials: BOB });
  for (const layer of image.layers) {
    const path = join(workDir, layer.digest.slice('sha256:'.length));
    await writeFile(path, layer.bytes);
    assert.equal(await pushBlob(client, repository, layer, { path }), 'uploaded');
  }
  assert.equal(await pushBlob(client, repository, image.config, image.config.bytes), 'uploaded');
  return pushManifest(client, repository, tag, image.manifest.bytes, image.manifest.mediaType);
}

test('an image pushed by tag reads back identically, here and with skopeo', async () => {
  const image = buildTestImage({ format: 'docker', layers: [{ 'thin.json': '{"version":"1.0"}' }], env: ['CVMFS_IMAGE=true'] });
  const before = registry.tokenRequests.length;
  assert.equal(await pushImage('thin/app', 'v1', image), image.manifest.digest);
  assert.deepEqual(
    [...new Set(registry.tokenRequests.slice(before).map((request) => `${request.scope} ${request.user}`))],
    ['repository:thin/app:pull,push bob'],
  );

  const client = testClient(registry.host, { credentials: BOB });
  const resolved = await resolveImage(client, parseImageReference(`${registry.host}/thin/app:v1`));
  assert.equal(resolved.manifestDigest, image.manifest.digest);
  assert.deepEqual(resolved.configBytes, image.config.bytes);
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'bob:hunter2', `docker://${registry.host}/thin/app:v1`]);
  assert.equal(sha256Digest(Buffer.from(stdout)), image.manifest.digest);
});

test('blobs the repository has are not uploaded again', async () => {
  const image = buildTestImage({ layers: [{ a: 'shared' }] });
  await pushImage('thin/again', 'v1', image);
  const client = testClient(registry.host, { credentials: BOB });
  assert.equal(await blobExists(client, 'thin/again', image.layers[0]!.digest), true);
  assert.equal(await blobExists(client, 'thin/again', sha256Digest(Buffer.from('absent'))), false);
  assert.equal(await pushBlob(client, 'thin/again', image.layers[0]!, image.layers[0]!.bytes), 'exists');
  assert.equal(await pushBlob(client, 'thin/again', image.config, image.config.bytes), 'exists');
});

test('a multi-platform index over manifests pushed by digest', async () => {
  const amd64 = buildTestImage({ layers: [{ arch: 'amd64' }] });
  const arm64 = buildTestImage({ layers: [{ arch: 'arm64' }], platform: { os: 'linux', architecture: 'arm64' } });
  await pushImage('thin/multi', amd64.manifest.digest, amd64);
  await pushImage('thin/multi', arm64.manifest.digest, arm64);
  const { index } = buildIndex([amd64, arm64]);
  const client = testClient(registry.host, { credentials: BOB });
  assert.equal(await pushManifest(client, 'thin/multi', 'latest', index.bytes, index.mediaType), index.digest);

  const resolved = await resolveImage(client, parseImageReference(`${registry.host}/thin/multi`), { platform: parsePlatform('linux/arm64') });
  assert.equal(resolved.indexDigest, index.digest);
  assert.equal(resolved.manifestDigest, arm64.manifest.digest);
});

test('refusals: a blob that does not match its digest, and a push without credentials', async () => {
  const client = testClient(registry.host, { credentials: BOB });
  const claimed = { digest: sha256Digest(Buffer.from('claimed')), size: 7 };
  await assert.rejects(
    pushBlob(client, 'thin/bad', claimed, Buffer.from('actual!')),
    (error) => isRegistryError(error, 'protocol') && error.message.includes(`upload of blob ${claimed.digest} to thin/bad: 400`) && error.message.includes('DIGEST_INVALID'),
  );
  const anonymous = testClient(registry.host);
  await assert.rejects(
    pushBlob(anonymous, 'thin/anonymous', claimed, Buffer.from('claimed')),
    (error) => isRegistryError(error, 'unauthorized') && error.message.includes('access to repository:thin/anonymous:pull,push denied'),
  );
});
