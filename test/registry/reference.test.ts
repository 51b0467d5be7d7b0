// Image references by Docker's rules, and the endpoint each one is fetched from.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolveEndpoint } from '../../src/core/registry/endpoint.ts';
import { isRegistryError } from '../../src/core/registry/errors.ts';
import { formatImageReference, manifestSelector, parseImageReference } from '../../src/core/registry/reference.ts';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('parseImageReference', () => {
  const valid: Array<[input: string, registry: string, repository: string, tag: string | undefined, digest?: string]> = [
    ['redis', 'docker.io', 'library/redis', 'latest'],
    ['redis:7', 'docker.io', 'library/redis', '7'],
    ['library/redis:4', 'docker.io', 'library/redis', '4'],
    ['atlas/analysisbase:21.2.1', 'docker.io', 'atlas/analysisbase', '21.2.1'],
    ['docker.io/redis', 'docker.io', 'library/redis', 'latest'],
    ['index.docker.io/redis', 'docker.io', 'library/redis', 'latest'],
    ['docker.io/a/b/c:x', 'docker.io', 'a/b/c', 'x'],
    // A port: docker2cvmfs split at the first ':' and broke these.
    ['localhost:5000/x', 'localhost:5000', 'x', 'latest'],
    ['localhost:5000/x:1.0', 'localhost:5000', 'x', '1.0'],
    ['127.0.0.1:5000/group/img:tag', '127.0.0.1:5000', 'group/img', 'tag'],
    ['localhost/x', 'localhost', 'x', 'latest'],
    ['registry.cern.ch/a/b', 'registry.cern.ch', 'a/b', 'latest'],
    ['gitlab-registry.cern.ch:443/a/b:1', 'gitlab-registry.cern.ch:443', 'a/b', '1'],
    ['Registry/x', 'Registry', 'x', 'latest'],
    ['[::1]:5000/x', '[::1]:5000', 'x', 'latest'],
    // No '.', ':' or localhost in the first component: a Docker Hub namespace, not a host.
    ['myhost/x', 'docker.io', 'myhost/x', 'latest'],
    // Without '/', a ':' starts the tag: Docker reads this as image "localhost", tag 5000.
    ['localhost:5000', 'docker.io', 'library/localhost', '5000'],
    ['a.b/c_d/e__f/g-h/i--j/k.l:T_1.-x', 'a.b', 'c_d/e__f/g-h/i--j/k.l', 'T_1.-x'],
    [`redis@${DIGEST}`, 'docker.io', 'library/redis', undefined, DIGEST],
    [`localhost:5000/x:1@${DIGEST}`, 'localhost:5000', 'x', '1', DIGEST],
  ];
  for (const [input, registry, repository, tag, digest] of valid) {
    test(input, () => {
      assert.deepEqual(parseImageReference(input), { registry, repository, tag, digest });
    });
  }

  const invalid: Array<[input: string, message: RegExp]> = [
    ['', /empty/],
    ['Redis', /must be lowercase/],
    ['docker.io/Library/redis', /must be lowercase/],
    ['redis:', /tag "" is invalid/],
    ['redis:-x', /tag "-x" is invalid/],
    [`redis:${'a'.repeat(129)}`, /tag .* is invalid/],
    ['redis@sha256:abc', /is not a digest/],
    [`redis@sha512:${'a'.repeat(128)}`, /algorithm "sha512" is not supported/],
    ['redis@', /is not a digest/],
    ['a..b/x', /"a\.\.b" is not a valid registry/],
    ['localhost:port/x', /"localhost:port" is not a valid registry/],
    ['localhost:5000/', /repository name is missing/],
    ['x//y', /"" is not a valid repository path component/],
    ['x/-y', /"-y" is not a valid repository path component/],
    ['x/y_', /"y_" is not a valid repository path component/],
    ['a b', /"a b" is not a valid repository path component/],
    ['ab'.repeat(32), /image ID/],
    ['https://registry.hub.docker.com/library/fedora:latest', /has no scheme; write registry\.hub\.docker\.com\/library\/fedora:latest/],
    [`x/${'a'.repeat(260)}`, /longer than 255/],
  ];
  for (const [input, message] of invalid) {
    test(`refuses ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}`, () => {
      assert.throws(() => parseImageReference(input), (error) => isRegistryError(error, 'bad-reference') && message.test(error.message));
    });
  }

  test('formats the fully qualified name and selects the digest over the tag', () => {
    const reference = parseImageReference(`localhost:5000/x:1@${DIGEST}`);
    assert.equal(formatImageReference(reference), `localhost:5000/x:1@${DIGEST}`);
    assert.equal(formatImageReference(parseImageReference('redis')), 'docker.io/library/redis:latest');
    assert.equal(manifestSelector(reference), DIGEST);
    assert.equal(manifestSelector(parseImageReference('redis:7')), '7');
  });
});

describe('resolveEndpoint', () => {
  const cases: Array<[registry: string, registryUrl: string | undefined, name: string, baseUrl: string]> = [
    ['docker.io', undefined, 'docker.io', 'https://registry-1.docker.io/'],
    ['registry.cern.ch', undefined, 'registry.cern.ch', 'https://registry.cern.ch/'],
    ['localhost:5000', undefined, 'localhost:5000', 'http://localhost:5000/'],
    ['127.0.0.1:5000', undefined, '127.0.0.1:5000', 'http://127.0.0.1:5000/'],
    ['127.1.2.3', undefined, '127.1.2.3', 'http://127.1.2.3/'],
    ['[::1]:5000', undefined, '[::1]:5000', 'http://[::1]:5000/'],
    ['localhost.example.org:5000', undefined, 'localhost.example.org:5000', 'https://localhost.example.org:5000/'],
    // docker2cvmfs's --registry: a full base URL, its default spelled with /v2.
    ['docker.io', 'https://registry-1.docker.io/v2', 'registry-1.docker.io', 'https://registry-1.docker.io/'],
    ['docker.io', 'http://127.0.0.1:5000', '127.0.0.1:5000', 'http://127.0.0.1:5000/'],
    ['registry.cern.ch', 'http://mirror.example.org:8080/v2/', 'mirror.example.org:8080', 'http://mirror.example.org:8080/'],
    ['docker.io', 'https://example.org/prefix', 'example.org', 'https://example.org/prefix'],
  ];
  for (const [registry, registryUrl, name, baseUrl] of cases) {
    test(`${registry}${registryUrl === undefined ? '' : ` with --registry ${registryUrl}`}`, () => {
      const endpoint = resolveEndpoint(registry, registryUrl);
      assert.equal(endpoint.registry, name);
      assert.equal(endpoint.baseUrl.href, baseUrl);
    });
  }

  for (const bad of ['not a url', 'ftp://example.org', 'https://user:pw@example.org', 'https://example.org/?x=1']) {
    test(`refuses --registry ${bad}`, () => {
      assert.throws(() => resolveEndpoint('docker.io', bad), (error) => isRegistryError(error, 'invalid-argument') && error.message.includes('--registry'));
    });
  }
});
