// Thin layers in the driver, with bind mounts standing in for the CernVM-FS client: the lower
// chain expands to the repository's layer dirs, repositories are mounted once and released
// symmetrically, and bad descriptors or unconfigured repositories fail Get with a clear message.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMountPoint } from '../../src/core/fs/mounts.ts';
import { OverlayDriver } from '../../src/driver/overlay-driver.ts';
import { chunks, file, makeTar, tempDir } from '../overlay/fixtures.ts';
import { pollUntil } from '../helpers/process.ts';
import { bindMounter } from './test-mounters.ts';

const REPO = 'thin.test.local';
const DIGEST_A = 'a'.repeat(64);
const DIGEST_B = 'b'.repeat(64);

/** A repository tree holding two overlay-ready layers: base, and top deleting and hiding base's files. */
async function makeRepository(root: string): Promise<void> {
  const base = path.join(root, REPO, 'layers', DIGEST_A);
  const top = path.join(root, REPO, 'layers', DIGEST_B);
  await fs.mkdir(path.join(base, 'etc'), { recursive: true });
  await fs.mkdir(path.join(base, 'opaque'), { recursive: true });
  await fs.writeFile(path.join(base, 'etc', 'kept'), 'kept\n');
  await fs.writeFile(path.join(base, 'etc', 'deleted'), 'deleted\n');
  await fs.writeFile(path.join(base, 'opaque', 'hidden'), 'hidden\n');
  await fs.mkdir(path.join(top, 'etc'), { recursive: true });
  await fs.mkdir(path.join(top, 'opaque'), { recursive: true });
  await fs.writeFile(path.join(top, 'etc', 'added'), 'added\n');
  await fs.writeFile(path.join(top, 'opaque', 'new'), 'new\n');
  execFileSync('mknod', [path.join(top, 'etc', 'deleted'), 'c', '0', '0']);
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(top, 'opaque')]);
}

function thinJson(layers: Array<[string, string]>): string {
  return JSON.stringify({ version: '1.0', origin: 'test', layers: layers.map(([digest, url]) => ({ digest, url })) });
}

async function setup(t: TestContext, allowed?: Set<string>, idleUnmountMs = 0, unmountDelayMs = 0, usedBefore: string[] = []) {
  const base = await tempDir(t, 'thin-driver-');
  await makeRepository(path.join(base, 'repos'));
  const mounter = bindMounter(path.join(base, 'repos'), { usedBefore });
  const driver = new OverlayDriver(path.join(base, 'init.json'), { mounter, repositories: () => allowed, idleUnmountMs }, { unmountDelayMs });
  await driver.init({ Home: path.join(base, 'home'), Opts: null, UIDMaps: null, GIDMaps: null });
  t.after(() => driver.cleanup());
  const home = path.join(base, 'home');
  const thinImage = async (id: string, descriptor: string) => {
    await driver.create({ ID: id }, 'ro');
    await driver.applyDiff(id, '', chunks(await makeTar([file('thin.json', descriptor)])));
  };
  const container = async (id: string, image: string) => {
    await driver.create({ ID: `${id}-init`, Parent: image }, 'rw');
    await driver.create({ ID: id, Parent: `${id}-init` }, 'rw');
  };
  return { driver, mounter, home, thinImage, container };
}

const GOOD = thinJson([
  [DIGEST_A, `cvmfs://${REPO}/layers/${DIGEST_A}`],
  [DIGEST_B, `cvmfs://${REPO}/layers/${DIGEST_B}`],
]);

test('a container on a thin image sees the repository layers stacked, base first', async (t) => {
  const s = await setup(t);
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  const root = await s.driver.get({ ID: 'c1' });
  const read = (p: string) => fs.readFile(path.join(root, p), 'utf8');
  assert.equal(await read('etc/kept'), 'kept\n');
  assert.equal(await read('etc/added'), 'added\n');
  assert.deepEqual((await fs.readdir(path.join(root, 'etc'))).sort(), ['added', 'kept'], 'the whiteout hides etc/deleted');
  assert.deepEqual(await fs.readdir(path.join(root, 'opaque')), ['new'], 'the opaque dir hides the base content');
  assert.equal(await fs.stat(path.join(root, 'thin.json')).catch(() => undefined), undefined, 'thin.json itself stays out of containers');
  assert.equal(new Map(await s.driver.status()).get('Layers'), '3', 'the repository mounts in home are not layers');
  await fs.writeFile(path.join(root, 'etc', 'written'), 'by the container\n');
  await s.driver.put({ ID: 'c1' });
  assert.equal(await s.driver.get({ ID: 'img' }), path.join(s.home, 'img', 'diff'), 'the thin layer itself is served unmounted (save and push read thin.json)');
  const changes = await s.driver.changes({ ID: 'c1', Parent: 'c1-init' });
  assert.deepEqual(changes, [{ Path: '/etc', Kind: 0 }, { Path: '/etc/written', Kind: 1 }], 'changes compare with the repository layers, mounted for the walk');
});

test('repositories are mounted once and released when the last layer using them is put', async (t) => {
  const s = await setup(t);
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  await s.container('c2', 'img');
  await s.driver.get({ ID: 'c1' });
  await s.driver.get({ ID: 'c2' });
  await s.driver.get({ ID: 'c1' });
  assert.deepEqual(s.mounter.mounts, [REPO]);
  const target = path.join(s.home, 'cvmfs', REPO);
  await s.driver.put({ ID: 'c1' });
  await s.driver.put({ ID: 'c1' });
  assert.ok(await isMountPoint(target), 'still used by c2');
  await s.driver.remove({ ID: 'c2' });
  assert.equal(await isMountPoint(target), false, 'removing the last mounted user releases the repository');
  assert.deepEqual(s.mounter.unmounts, [REPO]);
});

test('a container layer waiting out its unmount delay still holds its repositories', async (t) => {
  const s = await setup(t, undefined, 0, 1000);
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  await s.driver.get({ ID: 'c1' });
  await s.driver.put({ ID: 'c1' });
  const target = path.join(s.home, 'cvmfs', REPO);
  assert.ok(await isMountPoint(target), 'the overlay above still reads from it');
  const deadline = Date.now() + 5000;
  while ((await isMountPoint(target)) && Date.now() < deadline) await sleep(20);
  assert.equal(await isMountPoint(target), false, 'released with the overlay');
  assert.deepEqual(s.mounter.unmounts, [REPO]);
});

test('a bad thin.json fails Get with what is wrong, and loading it does not', async (t) => {
  const s = await setup(t);
  await s.thinImage('bad', JSON.stringify({ version: '1.0', layers: [{ digest: DIGEST_A, url: `cvmfs://${REPO}/../etc` }] }));
  await s.container('c1', 'bad');
  await assert.rejects(s.driver.get({ ID: 'c1' }), /layer bad is a thin image layer with a bad thin\.json: .*"\.\." path component/);
});

test('a repository the driver is not configured for is refused', async (t) => {
  const s = await setup(t, new Set(['other.repo.local']));
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  await assert.rejects(s.driver.get({ ID: 'c1' }), /reads from repository thin\.test\.local, which this driver is not configured for/);
  assert.deepEqual(s.mounter.mounts, []);
});

test('an image layer on a thin image without layers is served by a bind mount of its own diff', async (t) => {
  const s = await setup(t);
  await s.thinImage('scratch', thinJson([]));
  await s.driver.create({ ID: 'top', Parent: 'scratch' }, 'ro');
  await s.driver.applyDiff('top', 'scratch', chunks(await makeTar([file('hello', 'from the top layer\n')])));
  const root = await s.driver.get({ ID: 'top' });
  assert.equal(root, path.join(s.home, 'top', 'merged'));
  assert.equal(await fs.readFile(path.join(root, 'hello'), 'utf8'), 'from the top layer\n');
  assert.ok(await isMountPoint(root));
  await s.driver.put({ ID: 'top' });
  assert.equal(await isMountPoint(root), false);
});

test('layers published after the repository was mounted are picked up by mounting its newest revision once it is idle', async (t) => {
  const s = await setup(t);
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  await s.driver.get({ ID: 'c1' });
  const later = 'c'.repeat(64);
  await fs.mkdir(path.join(path.dirname(s.home), 'repos', REPO, 'layers', later, 'new'), { recursive: true });
  await s.thinImage('img2', thinJson([[later, `cvmfs://${REPO}/layers/${later}`]]));
  await s.container('c2', 'img2');
  await assert.rejects(s.driver.get({ ID: 'c2' }), /layers\/c{64} is newer than the revision its running containers use; it is picked up once they stop/);
  await s.driver.put({ ID: 'c1' });
  const root = await s.driver.get({ ID: 'c2' });
  assert.deepEqual(await fs.readdir(path.join(root, 'new')), []);
  assert.deepEqual(s.mounter.mounts, [REPO, REPO], 'mounted again for the new revision');
});

test('loading a thin image mounts its repository ahead of the first container, which then mounts nothing', async (t) => {
  const s = await setup(t, undefined, 60_000);
  await s.thinImage('img', GOOD);
  const target = path.join(s.home, 'cvmfs', REPO);
  const deadline = Date.now() + 10_000;
  while (!(await isMountPoint(target))) {
    assert.ok(Date.now() < deadline, 'the repository was not mounted after the thin layer was applied');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await s.container('c1', 'img');
  const root = await s.driver.get({ ID: 'c1' });
  assert.equal(await fs.readFile(path.join(root, 'etc', 'kept'), 'utf8'), 'kept\n');
  assert.deepEqual(s.mounter.mounts, [REPO], 'Get used the mount made while loading');
  await s.driver.put({ ID: 'c1' });
  assert.ok(await isMountPoint(target), 'kept mounted for the idle period');
  await s.driver.cleanup();
  assert.equal(await isMountPoint(target), false, 'Cleanup unmounts it');
});

test('Cleanup right after loading waits for the mount made ahead of use and undoes it', async (t) => {
  const s = await setup(t, undefined, 60_000);
  await s.thinImage('img', GOOD);
  await s.driver.cleanup();
  assert.equal(await isMountPoint(path.join(s.home, 'cvmfs', REPO)), false);
});

test('a starting driver mounts the repositories used here before ahead of use, configured ones only, until they have been idle', async (t) => {
  const s = await setup(t, new Set([REPO]), 300, 0, ['unconfigured.test.local', REPO]);
  await pollUntil(async () => s.mounter.unmounts.includes(REPO), 10_000, () => `mounted ahead and unmounted once idle; mounts ${s.mounter.mounts.join(', ')}`);
  assert.deepEqual(s.mounter.mounts, [REPO], 'only the repository the driver is configured for');
  assert.equal(await isMountPoint(path.join(s.home, 'cvmfs', REPO)), false);
});

test('names of repositories used before that are no repository names are never mounted', async (t) => {
  // Any repository may be used, and the names come from file names in the cache.
  const s = await setup(t, undefined, 300, 0, ['..', '', '.', 'a/b', REPO]);
  await pollUntil(async () => s.mounter.unmounts.includes(REPO), 10_000, () => `mounted ahead and unmounted once idle; mounts ${s.mounter.mounts.join(', ')}`);
  assert.deepEqual(s.mounter.mounts, [REPO]);
});

test('a repository used before is mounted ahead for the first container of its image', async (t) => {
  const s = await setup(t, undefined, 60_000, 0, [REPO]);
  await pollUntil(() => isMountPoint(path.join(s.home, 'cvmfs', REPO)), 10_000, () => 'mounted ahead of use');
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  const root = await s.driver.get({ ID: 'c1' });
  assert.equal(await fs.readFile(path.join(root, 'etc', 'kept'), 'utf8'), 'kept\n');
  assert.deepEqual(s.mounter.mounts, [REPO], 'loading and Get used the mount made as the driver started');
  await s.driver.put({ ID: 'c1' });
});

test('containers of one thin image started at once both get their layers', async (t) => {
  const s = await setup(t, undefined, 60_000);
  await s.thinImage('img', GOOD);
  await s.container('c1', 'img');
  await s.container('c2', 'img');
  // Both expand the thin layer for the first time, making the same short links.
  const roots = await Promise.all([s.driver.get({ ID: 'c1' }), s.driver.get({ ID: 'c2' })]);
  for (const root of roots) assert.equal(await fs.readFile(path.join(root, 'etc', 'kept'), 'utf8'), 'kept\n');
  await Promise.all([s.driver.put({ ID: 'c1' }), s.driver.put({ ID: 'c2' })]);
});
