// CVMFS_SERVER_URL and CVMFS_HTTP_PROXY failover against real nginx servers and a test proxy.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Repository, type RepositoryLocation } from '../../src/core/cvmfs/repository.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { copyFixtureRepository, flipByte, FQRN, loadExpected, makeTempDir, PUBLIC_KEY, removeDir, REPOSITORY_DIR, type Expected } from './fixture.ts';
import { startForwardProxy, type ForwardProxy } from './forward-proxy.ts';

const FILE = '/.layers/35/3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931/layerfs/bin/tool.sh';

let workDir: string;
let expected: Expected;
let good: NginxServer;
let damaged: NginxServer;
let proxy: ForwardProxy;
let deadUrl: string;
let cacheCount = 0;

/** A URL on which nothing listens: the port was free a moment ago. */
async function unusedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

before(async () => {
  workDir = await makeTempDir('failover');
  expected = await loadExpected();
  const copy = await copyFixtureRepository(join(workDir, 'damaged'));
  await flipByte(join(copy, expected.entries[FILE]!.objectPath!), 4);
  good = await startNginx({ [FQRN]: REPOSITORY_DIR });
  damaged = await startNginx({ [FQRN]: copy });
  proxy = await startForwardProxy();
  deadUrl = await unusedPortUrl();
});

after(async () => {
  await good?.stop();
  await damaged?.stop();
  await proxy?.stop();
  await removeDir(workDir);
});

async function readThrough(location: RepositoryLocation): Promise<Buffer> {
  const repository = await Repository.open({
    fqrn: FQRN,
    location,
    publicKeys: PUBLIC_KEY,
    cache: { directory: join(workDir, `cache-${cacheCount++}`), maxBytes: 1 << 26 },
  });
  try {
    return await repository.readFile(FILE);
  } finally {
    repository.close();
  }
}

const sha1 = (data: Buffer) => createHash('sha1').update(data).digest('hex');

describe('server failover', () => {
  test('a server that is down is skipped for the next one', async () => {
    const content = await readThrough({ serverUrls: `${deadUrl}/cvmfs/@fqrn@;${good.baseUrl}/cvmfs/@fqrn@` });
    assert.equal(sha1(content), expected.entries[FILE]!.sha1);
  });

  test('when every server is down the error names each URL and what to check', async () => {
    const other = await unusedPortUrl();
    await assert.rejects(readThrough({ serverUrls: `${deadUrl}/cvmfs/@fqrn@;${other}/cvmfs/@fqrn@` }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'unreachable');
      assert.match(error.message, new RegExp(`${deadUrl}/cvmfs/${FQRN}/.cvmfspublished: connect ECONNREFUSED`));
      assert.match(error.message, new RegExp(`${other}/cvmfs/${FQRN}/.cvmfspublished: connect ECONNREFUSED`));
      assert.match(error.message, /CVMFS_SERVER_URL/);
      return true;
    });
  });

  test('a server serving a damaged object is skipped, and its bytes are not used', async () => {
    const seen = (await damaged.accessLog()).length;
    const content = await readThrough({ serverUrls: `${damaged.baseUrl}/cvmfs/@fqrn@;${good.baseUrl}/cvmfs/@fqrn@` });
    assert.equal(sha1(content), expected.entries[FILE]!.sha1);
    const fromDamaged = (await damaged.accessLog()).slice(seen).map((entry) => entry.path);
    assert.ok(fromDamaged.includes(`/cvmfs/${FQRN}/${expected.entries[FILE]!.objectPath}`), 'the damaged server was asked first');
  });
});

describe('proxy failover', () => {
  test('a dead proxy group fails over to the next group', async () => {
    const before = proxy.requests.length;
    const content = await readThrough({ serverUrls: `${good.baseUrl}/cvmfs/@fqrn@`, httpProxy: `${deadUrl};${proxy.url}` });
    assert.equal(sha1(content), expected.entries[FILE]!.sha1);
    const forwarded = proxy.requests.slice(before).map((request) => request.url);
    assert.ok(forwarded.includes(`${good.baseUrl}/cvmfs/${FQRN}/${expected.entries[FILE]!.objectPath}`));
  });

  test('within a load-balanced group a dead proxy is skipped', async () => {
    for (let i = 0; i < 3; i++) {
      const content = await readThrough({ serverUrls: `${good.baseUrl}/cvmfs/@fqrn@`, httpProxy: `${deadUrl}|${proxy.url}` });
      assert.equal(sha1(content), expected.entries[FILE]!.sha1);
    }
  });

  test('DIRECT after dead proxies connects without a proxy', async () => {
    const before = proxy.requests.length;
    await readThrough({ serverUrls: `${good.baseUrl}/cvmfs/@fqrn@`, httpProxy: `${deadUrl};DIRECT` });
    assert.equal(proxy.requests.length, before);
  });

  test('bad data through a proxy is asked for again with no-cache', async () => {
    const objectUrl = `${good.baseUrl}/cvmfs/${FQRN}/${expected.entries[FILE]!.objectPath}`;
    const stale = await startForwardProxy((request) => request.url === objectUrl && !request.noCache);
    try {
      const content = await readThrough({ serverUrls: `${good.baseUrl}/cvmfs/@fqrn@`, httpProxy: stale.url });
      assert.equal(sha1(content), expected.entries[FILE]!.sha1);
      assert.deepEqual(
        stale.requests.filter((request) => request.url === objectUrl),
        [{ url: objectUrl, noCache: false }, { url: objectUrl, noCache: true }],
      );
    } finally {
      await stale.stop();
    }
  });
});
