// `cvmfs-graphdriver mount` of the fixture repository (made by the real tools), served by nginx
// through a proxy that can cut it off: the whole tree as a mount shows it against expected.json,
// one small read fetching one object, an outage (cached files work, uncached fail with EIO, the
// mount recovers with the server) and a new revision reaching a new mount while an old mount
// keeps serving a file held open.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { deviceNumbers } from '../../src/core/fs/walk.ts';
import { isMounted, unmount } from '../../src/core/fuse/mount.ts';
import { ingest } from '../../src/core/cvmfs/publish/ingest.ts';
import { initRepository } from '../../src/core/cvmfs/publish/init.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { run } from '../helpers/process.ts';
import { copyFixtureRepository, FIXTURES, FQRN, loadExpected, makeTempDir, PUBLIC_KEY, removeDir, type Expected } from './fixture.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** A TCP relay to the server that can drop every connection, like a server going away. */
async function switchableRelay(port: number): Promise<{ url: string; down: boolean; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const relay = {
    url: '',
    down: false,
    /** Refuses new connections and breaks the open ones (kept-alive connections included). */
    cut: () => {
      relay.down = true;
      for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
  const server = net.createServer((client) => {
    if (relay.down) return void client.destroy();
    const upstream = net.connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return relay;
}
/** What the kernel shows for an owner FUSE reports as (uid_t)-1. */
const OVERFLOW_ID = 65534;

describe('the embedded client mounting the fixture repository over HTTP', () => {
  let dir: string;
  let nginx: NginxServer;
  let relay: Awaited<ReturnType<typeof switchableRelay>>;
  let expected: Expected;
  const servers: ChildProcess[] = [];

  async function mount(mountpoint: string, url: string): Promise<void> {
    await mkdir(mountpoint, { recursive: true });
    const server = spawn(process.execPath, [MAIN, 'mount', url, mountpoint, '--key', PUBLIC_KEY, '--cache', join(dir, 'cache')], { stdio: 'ignore' });
    servers.push(server);
    const deadline = Date.now() + 20_000;
    while (!(await isMounted(mountpoint))) {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`mount of ${url} at ${mountpoint} did not come up`);
      await sleep(50);
    }
  }

  // Only asynchronous file calls here: the relay runs on this process's event loop, and the
  // mount's server needs it to answer while a call waits on the mount.
  const sha1 = async (file: string) => createHash('sha1').update(await readFile(file)).digest('hex');

  before(async () => {
    dir = await makeTempDir('mount');
    expected = await loadExpected();
    const storage = await copyFixtureRepository(join(dir, 'served'));
    nginx = await startNginx({ [FQRN]: storage });
    relay = await switchableRelay(nginx.port);
    await mount(join(dir, 'mnt'), `${relay.url}/cvmfs/${FQRN}`);
  });

  after(async () => {
    for (const mountpoint of ['mnt', 'mnt-new']) await unmount(join(dir, mountpoint)).catch(() => undefined);
    for (const server of servers) if (server.exitCode === null) server.kill();
    await relay?.close();
    await nginx?.stop();
    await removeDir(dir);
  });

  test('one small read fetches that object and the catalog it lives in, nothing more', async () => {
    const before = (await nginx.accessLog()).length;
    const path = '/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs/perm/exec-0755';
    assert.equal(await sha1(join(dir, 'mnt', path)), expected.entries[path]!.sha1);
    const requests = (await nginx.accessLog()).slice(before).map((entry) => entry.path.replace(`/cvmfs/${FQRN}/`, ''));
    const object = expected.entries[path]!.objectPath!;
    const catalog = expected.catalogs.find((c) => c.mountpoint === expected.entries[path]!.catalog)!.objectPath;
    assert.deepEqual(requests.sort(), [catalog, object].sort());
  });

  test('with the server unreachable cached files work, others fail with EIO; the mount recovers with the server', async () => {
    const base = join(dir, 'mnt', '.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs');
    relay.cut();
    try {
      assert.equal(await sha1(join(base, 'perm/exec-0755')), expected.entries['/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs/perm/exec-0755']!.sha1);
      await assert.rejects(readFile(join(base, 'perm/private-0600')), (error: NodeJS.ErrnoException) => error.code === 'EIO');
    } finally {
      relay.down = false;
    }
    assert.equal((await readFile(join(base, 'perm/private-0600'), 'utf8')).length, 7, 'served again once the server is back');
  });

  test('every path shows what expected.json says: type, mode, owners, size, times, targets, devices, xattrs, content', async () => {
    const mountpoint = join(dir, 'mnt');
    for (const [path, entry] of Object.entries(expected.entries)) {
      const at = join(mountpoint, path);
      const stat = await lstat(at);
      const where = `${path}: `;
      assert.equal(stat.mode, entry.stat.mode, `${where}mode`);
      assert.equal(stat.nlink, entry.stat.nlink, `${where}nlink`);
      assert.equal(stat.uid, entry.stat.uid === 4294967295 ? OVERFLOW_ID : entry.stat.uid, `${where}uid`);
      assert.equal(stat.gid, entry.stat.gid === 4294967295 ? OVERFLOW_ID : entry.stat.gid, `${where}gid`);
      assert.equal(Math.floor(stat.mtimeMs / 1000), entry.stat.mtime, `${where}mtime`);
      if (entry.type !== 'dir') assert.equal(stat.size, entry.stat.size, `${where}size`);
      if (entry.type === 'symlink') assert.equal(await readlink(at), entry.symlink, `${where}target`);
      if (entry.type === 'file') assert.equal(await sha1(at), entry.sha1, `${where}content`);
      if (entry.rdev) assert.deepEqual(deviceNumbers(stat.rdev), entry.rdev, `${where}device`);
      if (entry.type === 'dir') {
        const children = Object.keys(expected.entries).filter((other) => other !== path && other.startsWith(path === '/' ? '/' : `${path}/`) && !other.slice(path === '/' ? 1 : path.length + 1).includes('/'));
        assert.deepEqual((await readdir(at)).sort(), children.map((child) => child.slice(child.lastIndexOf('/') + 1)).sort(), `${where}listing`);
      }
      if (entry.xattrs) {
        const dump = (await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', at])).stdout;
        for (const [name, value] of Object.entries(entry.xattrs)) assert.match(dump, new RegExp(`${name.replace(/\./g, '\\.')}=0x${Buffer.from(value).toString('hex')}`), `${where}xattr ${name}`);
      }
    }
  });

  test('a new revision reaches a new mount; the old mount keeps serving a file held open', async () => {
    const held = join(dir, 'mnt', '/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs/README.txt');
    const handle = await open(held, 'r');
    try {
      const { publisher } = await initRepository(join(dir, 'publisher'), { fqrn: FQRN, storage: join(dir, 'served', FQRN), importKeysFrom: join(FIXTURES, 'keys') });
      await run('sh', ['-c', `mkdir -p ${join(dir, 'stage')} && echo added > ${join(dir, 'stage', 'added.txt')} && tar -C ${join(dir, 'stage')} -cf ${join(dir, 'added.tar')} .`]);
      await ingest(publisher, { tar: createReadStream(join(dir, 'added.tar')), baseDir: '/added', createCatalog: true });
      await mount(join(dir, 'mnt-new'), `${relay.url}/cvmfs/${FQRN}`);
      assert.equal(await readFile(join(dir, 'mnt-new', 'added', 'added.txt'), 'utf8'), 'added\n');
      await assert.rejects(lstat(join(dir, 'mnt', 'added')), /ENOENT/, 'the old mount stays on its revision');
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(64), 0, 64, 0);
      assert.match(buffer.subarray(0, bytesRead).toString(), /layer 1/i);
    } finally {
      await handle.close();
    }
  });
});
