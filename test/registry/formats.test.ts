// What the client reads without a registry: auth challenges, platforms, manifests, image
// configs and layer compressions.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { parseAuthenticateHeader } from '../../src/core/registry/challenge.ts';
import { isRegistryError } from '../../src/core/registry/errors.ts';
import { parseImageConfig } from '../../src/core/registry/image-config.ts';
import { decompressLayer, layerCompression } from '../../src/core/registry/layer-decompression.ts';
import { parseManifest } from '../../src/core/registry/manifest.ts';
import { DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST } from '../../src/core/registry/media-types.ts';
import { formatPlatform, parsePlatform, platformMatches, selectPlatform } from '../../src/core/registry/platform.ts';
import { readAll } from './proxy.ts';
import { buildIndex, buildTestImage, tarOf } from './test-images.ts';

describe('parseAuthenticateHeader', () => {
  test('a bearer challenge with quoted parameters', () => {
    const [challenge, ...rest] = parseAuthenticateHeader(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
    );
    assert.equal(rest.length, 0);
    assert.equal(challenge!.scheme, 'bearer');
    assert.deepEqual(Object.fromEntries(challenge!.params), {
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:samalba/my-app:pull,push',
    });
  });

  test('several challenges, token values, odd spacing, escapes and case', () => {
    const challenges = parseAuthenticateHeader('Basic realm="a \\"b\\"" , BEARER Realm = x , error=insufficient_scope,Negotiate');
    assert.deepEqual(
      challenges.map((challenge) => [challenge.scheme, Object.fromEntries(challenge.params)]),
      [
        ['basic', { realm: 'a "b"' }],
        ['bearer', { realm: 'x', error: 'insufficient_scope' }],
        ['negotiate', {}],
      ],
    );
  });

  test('nothing readable', () => {
    assert.deepEqual(parseAuthenticateHeader(''), []);
    assert.deepEqual(parseAuthenticateHeader('   ,  '), []);
  });
});

describe('platforms', () => {
  test('parse and format', () => {
    assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.equal(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }), 'linux/arm/v7');
    for (const bad of ['linux', 'linux/', 'Linux/amd64', 'linux/amd64/v8/x']) {
      assert.throws(() => parsePlatform(bad), (error) => isRegistryError(error, 'invalid-argument') && error.message.includes('os/arch'));
    }
  });

  test('matching treats arm64 "" and v8 (and amd64 "" and v1) alike, and any variant when none is asked', () => {
    const arm64v8 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
    assert.ok(platformMatches({ os: 'linux', architecture: 'arm64' }, arm64v8));
    assert.ok(platformMatches(arm64v8, { os: 'linux', architecture: 'arm64' }));
    assert.ok(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'amd64', variant: 'v3' }));
    assert.ok(platformMatches({ os: 'linux', architecture: 'amd64', variant: 'v1' }, { os: 'linux', architecture: 'amd64' }));
    assert.ok(!platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }));
    assert.ok(!platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' }));
  });

  test('selection takes the first match and skips entries without a platform', () => {
    const entries = [undefined, { os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }];
    assert.equal(selectPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }, entries), 2);
    assert.equal(selectPlatform({ os: 'linux', architecture: 'arm' }, entries), 1);
    assert.equal(selectPlatform({ os: 'linux', architecture: 's390x' }, entries), -1);
  });
});

describe('parseManifest', () => {
  const image = buildTestImage({ layers: [{ a: '1' }, { b: '2' }] });

  test('an OCI manifest', () => {
    const manifest = parseManifest(image.manifest.bytes, OCI_MANIFEST, 'm');
    assert.equal(manifest.kind, 'manifest');
    assert.deepEqual(manifest.kind === 'manifest' && manifest.layers.map((layer) => layer.digest), image.layers.map((layer) => layer.digest));
  });

  test('an index, with the media type taken from the body, the header or the shape', () => {
    const amd = buildTestImage({ layers: [{ a: '1' }] });
    const arm = buildTestImage({ layers: [{ a: '2' }], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const { index } = buildIndex([amd, arm]);
    for (const contentType of [OCI_INDEX, 'application/json', null]) {
      const manifest = parseManifest(index.bytes, contentType, 'i');
      assert.equal(manifest.kind, 'index');
      assert.deepEqual(manifest.kind === 'index' && manifest.manifests.map((entry) => entry.platform), [amd.platform, arm.platform]);
    }
    const withoutMediaType = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    assert.equal(parseManifest(withoutMediaType, 'application/octet-stream', 'i').mediaType, OCI_INDEX);
  });

  const broken: Array<[name: string, body: unknown, code: string, message: RegExp]> = [
    ['not JSON', '{', 'bad-manifest', /m: not JSON/],
    ['schema 1', { schemaVersion: 1, name: 'x' }, 'unsupported', /schema 1/],
    ['schemaVersion 3', { schemaVersion: 3, mediaType: OCI_MANIFEST }, 'bad-manifest', /schemaVersion 3/],
    ['a bad layer digest', { schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { mediaType: 'x', digest: 'sha256:00', size: 1 }, layers: [] }, 'bad-manifest', /"config.digest"/],
    ['a negative size', { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: -1 }, layers: [] }, 'bad-manifest', /"config.size"/],
    ['no layers', { schemaVersion: 2, mediaType: OCI_MANIFEST, config: {} }, 'bad-manifest', /"layers" is not an array/],
    ['a platform without architecture', { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: `sha256:${'0'.repeat(64)}`, size: 1, platform: { os: 'linux' } }] }, 'bad-manifest', /manifests\[0\]\.platform/],
    ['another artifact', { schemaVersion: 2, mediaType: 'application/vnd.example+json' }, 'unsupported', /not an image manifest or index/],
  ];
  for (const [name, body, code, message] of broken) {
    test(`refuses ${name}`, () => {
      const bytes = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      assert.throws(() => parseManifest(bytes, null, 'm'), (error) => isRegistryError(error) && error.code === code && message.test(error.message));
    });
  }
});

describe('parseImageConfig', () => {
  test('platform, runtime settings and diff IDs', () => {
    const image = buildTestImage({ layers: [{ a: '1' }], platform: { os: 'linux', architecture: 'arm', variant: 'v7' }, env: ['A=1'], cmd: ['run', 'it'] });
    const config = parseImageConfig(image.config.bytes, 'c');
    assert.deepEqual(config.platform, { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(config.config, { Env: ['A=1'], Cmd: ['run', 'it'] });
    assert.equal(config.diffIds.length, 1);
  });

  test('Docker fields, null config and refusals', () => {
    const base = { os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } };
    const parse = (value: object) => parseImageConfig(Buffer.from(JSON.stringify(value)), 'c');
    const full = parse({
      ...base,
      config: { Entrypoint: ['/e'], WorkingDir: '/w', User: '1:2', Labels: { a: 'b' }, ExposedPorts: { '80/tcp': {} }, Volumes: { '/v': {} }, Cmd: null },
    });
    assert.deepEqual(full.config, { Entrypoint: ['/e'], WorkingDir: '/w', User: '1:2', Labels: { a: 'b' }, ExposedPorts: ['80/tcp'], Volumes: ['/v'] });
    assert.deepEqual(parse({ ...base, config: null }).config, {});
    assert.throws(() => parse({ ...base, config: { Env: 'A=1' } }), (error) => isRegistryError(error, 'bad-config') && /config\.Env/.test(error.message));
    assert.throws(() => parse({ os: 'linux', architecture: 'amd64' }), (error) => isRegistryError(error, 'bad-config') && /diff_ids/.test(error.message));
    assert.throws(() => parse({ ...base, rootfs: { diff_ids: ['x'] } }), (error) => isRegistryError(error, 'bad-config') && /diff_ids\[0\]/.test(error.message));
  });
});

describe('decompressLayer', () => {
  const tar = tarOf({ 'etc/hello': 'hello world\n'.repeat(100) });
  const layers: Array<[mediaType: string, blob: Buffer]> = [
    [DOCKER_LAYER_GZIP, gzipSync(tar)],
    [OCI_LAYER_GZIP, gzipSync(tar)],
    [OCI_LAYER_ZSTD, zstdCompressSync(tar)],
    [OCI_LAYER, tar],
  ];
  for (const [mediaType, blob] of layers) {
    test(`${mediaType} (${layerCompression(mediaType)})`, async () => {
      assert.deepEqual(await readAll(Readable.from([blob]).pipe(decompressLayer(mediaType))), tar);
    });
  }

  test('refuses an unknown media type', () => {
    assert.throws(() => decompressLayer('application/vnd.example.layer'), (error) => isRegistryError(error, 'unsupported'));
  });
});
