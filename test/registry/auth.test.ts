// Authentication against real registries: anonymous and credentialed bearer tokens from a token
// server (cached per scope, fetched again when the registry refuses one), Basic auth, and
// credentials from Docker's config.json: inline `auths`, identity tokens, and credential helpers
// (a fake docker-credential-test on PATH).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { readBlob } from '../../src/core/registry/blob-reader.ts';
import type { RegistryClient } from '../../src/core/registry/client.ts';
import type { Credentials } from '../../src/core/registry/credentials.ts';
import { isRegistryError } from '../../src/core/registry/errors.ts';
import { parseImageReference } from '../../src/core/registry/reference.ts';
import { resolveImage } from '../../src/core/registry/resolve-image.ts';
import { startRegistry, type RegistryOptions, type TestRegistry } from '../helpers/registry.ts';
import { seed, tempDir, testClient } from './fixtures.ts';
import { relay, startProxy } from './proxy.ts';
import { buildTestImage } from './test-images.ts';

const image = buildTestImage({ layers: [{ 'etc/greeting': 'hello\n' }, { 'etc/farewell': 'bye\n' }] });
const other = buildTestImage({ layers: [{ 'etc/other': 'other\n' }] });

/** Starts a registry for the enclosing suite, seeded with test/img:v1 and test/other:v1. */
function registryForSuite(options: RegistryOptions): () => TestRegistry {
  let registry: TestRegistry | undefined;
  let workDir: string | undefined;
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'registry-auth-'));
    registry = await startRegistry(options);
    await seed(registry, workDir, 'test/img:v1', image);
    await seed(registry, workDir, 'test/other:v1', other);
  });
  after(async () => {
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });
  return () => registry!;
}

async function pull(client: RegistryClient, host: string, repository = 'test/img'): Promise<void> {
  const resolved = await resolveImage(client, parseImageReference(`${host}/${repository}:v1`));
  const expected = repository === 'test/img' ? image : other;
  assert.equal(resolved.manifestDigest, expected.manifest.digest);
  assert.deepEqual(await readBlob(client, repository, resolved.manifest.layers[0]!), expected.layers[0]!.bytes);
}

function password(username: string, secret: string): Credentials {
  return { kind: 'password', username, password: secret, source: 'the test' };
}

/** A DOCKER_CONFIG directory holding `config`. */
async function dockerConfig(context: TestContext, config: object): Promise<string> {
  const dir = await tempDir(context, 'docker-config');
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

/**
 * A fake `docker-credential-<name>` in a fresh bin dir: it logs each server URL it is asked
 * for and answers from `answers` (by server URL), else says it has nothing.
 */
async function credentialHelper(context: TestContext, name: string, answers: Record<string, { Username: string; Secret: string }>) {
  const binDir = await tempDir(context, 'bin');
  const logPath = join(binDir, 'asked.log');
  const cases = Object.entries(answers)
    .map(([server, answer]) => `  '${server}') printf '%s' '${JSON.stringify({ ServerURL: server, ...answer })}' ;;`)
    .join('\n');
  const script = `#!/bin/sh
[ "$1" = get ] || { echo "unexpected action $1" >&2; exit 2; }
read -r server || true
printf '%s\\n' "$server" >> '${logPath}'
case "$server" in
${cases}
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
`;
  await writeFile(join(binDir, `docker-credential-${name}`), script);
  await chmod(join(binDir, `docker-credential-${name}`), 0o755);
  return {
    path: `${binDir}:${process.env.PATH}`,
    /** The server URLs it was asked for, in order. */
    asked: () => readFile(logPath, 'utf8').then((text) => text.split('\n').filter(Boolean), () => []),
  };
}

describe('bearer tokens, anonymous pull allowed', () => {
  const registry = registryForSuite({ tokenAuth: { users: { bob: 'hunter2' }, refreshTokens: { 'refresh-123': 'bob' } } });

  test('anonymous: one token per scope, reused for later requests', async () => {
    const { host, tokenRequests } = registry();
    const before = tokenRequests.length;
    const client = testClient(host);
    await pull(client, host);
    await readBlob(client, 'test/img', image.layers[1]!);
    assert.deepEqual(tokenRequests.slice(before), [{ method: 'GET', scope: 'repository:test/img:pull', user: undefined, status: 200 }]);
    await pull(client, host, 'test/other');
    assert.deepEqual(
      tokenRequests.slice(before).map((request) => request.scope),
      ['repository:test/img:pull', 'repository:test/other:pull'],
    );
  });

  test('a token the registry refuses is replaced by a fresh one', async (context) => {
    const { baseUrl, tokenRequests } = registry();
    const proxy = await startProxy(baseUrl);
    context.after(() => proxy.stop());
    // Refuse the first authorized blob request as if the token had been revoked, with the
    // registry's own 401 and challenge.
    let refused = false;
    proxy.intercept = async (request, response, forward) => {
      if (refused || !request.url?.includes('/blobs/') || request.headers.authorization === undefined) return false;
      refused = true;
      relay(await forward({ authorization: undefined }), response);
      return true;
    };
    const before = tokenRequests.length;
    await pull(testClient(proxy.host), proxy.host);
    assert.ok(refused);
    assert.deepEqual(
      tokenRequests.slice(before).map((request) => request.scope),
      ['repository:test/img:pull', 'repository:test/img:pull'],
    );
  });

  test('credentials are sent to the token server', async () => {
    const { host, tokenRequests } = registry();
    await pull(testClient(host, { credentials: password('bob', 'hunter2') }), host);
    assert.equal(tokenRequests.at(-1)!.user, 'bob');
  });

  test('an identity token from config.json is exchanged by the OAuth2 refresh grant', async (context) => {
    const { host, tokenRequests } = registry();
    const dockerConfigDir = await dockerConfig(context, { auths: { [host]: { auth: Buffer.from('bob:').toString('base64'), identitytoken: 'refresh-123' } } });
    await pull(testClient(host, { dockerConfigDir }), host);
    assert.deepEqual(tokenRequests.at(-1), { method: 'POST', scope: 'repository:test/img:pull', user: 'bob', status: 200 });
  });

  test('a wrong password is reported with the registry, the user and what to do', async () => {
    const { host } = registry();
    await assert.rejects(
      pull(testClient(host, { credentials: password('bob', 'wrong') }), host),
      (error) =>
        isRegistryError(error, 'unauthorized') &&
        error.message === `${host} rejected the credentials of user "bob" from the test; log in again with \`docker login ${host}\` (or fix the credential helper)`,
    );
  });
});

describe('bearer tokens, login required', () => {
  const registry = registryForSuite({ tokenAuth: { users: { bob: 'hunter2' }, anonymousPull: false } });

  test('without credentials: access denied, with the advice to log in', async () => {
    const { host } = registry();
    await assert.rejects(
      pull(testClient(host), host),
      (error) =>
        isRegistryError(error, 'unauthorized') &&
        error.message.includes(`${host}: access to repository:test/img:pull denied`) &&
        error.message.includes(`docker login ${host}`),
    );
  });

  test('with credentials from config.json "auths"', async (context) => {
    const { host, tokenRequests } = registry();
    const dockerConfigDir = await dockerConfig(context, { auths: { [host]: { auth: Buffer.from('bob:hunter2').toString('base64') } } });
    await pull(testClient(host, { dockerConfigDir }), host);
    assert.equal(tokenRequests.at(-1)!.user, 'bob');
  });
});

describe('Basic auth', () => {
  const registry = registryForSuite({ basicAuth: { username: 'alice', password: 's3cret' } });

  test('good credentials', async () => {
    const { host } = registry();
    await pull(testClient(host, { credentials: password('alice', 's3cret') }), host);
  });

  test('wrong credentials', async () => {
    const { host } = registry();
    await assert.rejects(
      pull(testClient(host, { credentials: password('alice', 'nope') }), host),
      (error) => isRegistryError(error, 'unauthorized') && error.message.startsWith(`${host} rejected the credentials of user "alice" from the test;`),
    );
  });

  test('no credentials', async () => {
    const { host } = registry();
    await assert.rejects(
      pull(testClient(host), host),
      (error) => isRegistryError(error, 'unauthorized') && error.message.includes(`${host} requires a login`) && error.message.includes(`docker login ${host}`),
    );
  });

  test('config.json "auths" keyed by host or URL, with "auth" or username and password', async (context) => {
    const { host } = registry();
    const entries: object[] = [
      { [host]: { auth: Buffer.from('alice:s3cret').toString('base64') } },
      { [`http://${host}/v1/`]: { username: 'alice', password: 's3cret' } },
      { 'other.example.org': { auth: 'eDp5' }, [`https://${host}`]: { auth: Buffer.from('alice:s3cret').toString('base64') } },
    ];
    for (const auths of entries) {
      await pull(testClient(host, { dockerConfigDir: await dockerConfig(context, { auths }) }), host);
    }
  });

  test('wrong credentials from config.json name the file', async (context) => {
    const { host } = registry();
    const dockerConfigDir = await dockerConfig(context, { auths: { [host]: { auth: Buffer.from('alice:old').toString('base64') } } });
    await assert.rejects(
      pull(testClient(host, { dockerConfigDir }), host),
      (error) => isRegistryError(error, 'unauthorized') && error.message.includes(`from "auths" entry "${host}" in ${join(dockerConfigDir, 'config.json')}`),
    );
  });

  test('credHelpers: the helper for this registry is asked with the host on stdin', async (context) => {
    const { host } = registry();
    const helper = await credentialHelper(context, 'test', { [host]: { Username: 'alice', Secret: 's3cret' } });
    // A credsStore that would fail shows the registry's own helper takes precedence.
    const dockerConfigDir = await dockerConfig(context, { credsStore: 'missing', credHelpers: { [host]: 'test' }, auths: { [host]: {} } });
    await pull(testClient(host, { dockerConfigDir, env: { DOCKER_CONFIG: dockerConfigDir, PATH: helper.path } }), host);
    assert.deepEqual(await helper.asked(), [host]);
  });

  test('credsStore: used for every registry; "not found" means no credentials', async (context) => {
    const { host } = registry();
    const helper = await credentialHelper(context, 'test', { [host]: { Username: 'alice', Secret: 's3cret' } });
    const dockerConfigDir = await dockerConfig(context, { credsStore: 'test' });
    const env = { DOCKER_CONFIG: dockerConfigDir, PATH: helper.path };
    await pull(testClient(host, { env }), host);

    const empty = await credentialHelper(context, 'test', {});
    await assert.rejects(
      pull(testClient(host, { env: { ...env, PATH: empty.path } }), host),
      (error) => isRegistryError(error, 'unauthorized') && error.message.includes('requires a login'),
    );
    assert.deepEqual(await empty.asked(), [host]);
  });

  test('a helper with a stale password is named in the error', async (context) => {
    const { host } = registry();
    const helper = await credentialHelper(context, 'test', { [host]: { Username: 'alice', Secret: 'stale' } });
    const dockerConfigDir = await dockerConfig(context, { credHelpers: { [host]: 'test' } });
    await assert.rejects(
      pull(testClient(host, { env: { DOCKER_CONFIG: dockerConfigDir, PATH: helper.path } }), host),
      (error) => isRegistryError(error, 'unauthorized') && error.message.includes('from credential helper docker-credential-test'),
    );
  });

  test('a helper missing from PATH, and a config.json that is not JSON', async (context) => {
    const { host } = registry();
    const emptyBin = await tempDir(context, 'empty-bin');
    const withMissingHelper = await dockerConfig(context, { credsStore: 'missing' });
    await assert.rejects(
      pull(testClient(host, { env: { DOCKER_CONFIG: withMissingHelper, PATH: emptyBin } }), host),
      (error) => isRegistryError(error, 'credentials') && error.message.includes('docker-credential-missing is not on PATH'),
    );
    const broken = await tempDir(context, 'broken-config');
    await writeFile(join(broken, 'config.json'), '{"auths": ');
    await assert.rejects(
      pull(testClient(host, { dockerConfigDir: broken }), host),
      (error) => isRegistryError(error, 'credentials') && error.message.includes(`${join(broken, 'config.json')} is not valid JSON`),
    );
  });
});
