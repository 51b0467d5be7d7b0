// Thin layers from a client that shows them as CernVM-FS stores them (cvmfs2): `.wh.<name>`,
// `.wh..wh..opq` and `.cvmfscatalog` are plain files there. A bind mount of such a tree stands
// in for the client; the driver must still delete and hide what the layers say, show none of
// those names, keep the layers' directory attributes, and make the whiteout layers only once.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { walkTree } from '../../src/core/fs/walk.ts';
import { OverlayDriver } from '../../src/driver/overlay-driver.ts';
import { chunks, file, makeTar, run, tempDir, xattrsOf } from '../overlay/fixtures.ts';
import { bindMounter } from './test-mounters.ts';

const REPO = 'raw.test.local';
const BASE = 'a'.repeat(64);
const TOP = 'b'.repeat(64);
const TOP_ETC_MTIME = 1_600_000_000;

async function write(root: string, files: Record<string, string>): Promise<void> {
  for (const [relPath, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, relPath)), { recursive: true });
    await fs.writeFile(path.join(root, relPath), content);
  }
}

/** Two layers as ingestion stores them: top deletes, hides and changes what base holds. */
async function makeRawRepository(root: string): Promise<void> {
  const base = path.join(root, REPO, 'layers', BASE);
  const top = path.join(root, REPO, 'layers', TOP);
  await write(base, {
    '.cvmfscatalog': '',
    'etc/kept': 'kept\n',
    'etc/deleted': 'deleted\n',
    'opaque/hidden': 'hidden\n',
    'gone/inside': 'in a deleted directory\n',
  });
  await write(top, {
    '.cvmfscatalog': '',
    '.wh.gone': '',
    '.wh..wh..plnk': '',
    'etc/added': 'added\n',
    'etc/.wh.deleted': '',
    'opaque/.wh..wh..opq': '',
    'opaque/new': 'new\n',
    'sub/nested/.cvmfscatalog': '',
    'sub/nested/file': 'in a nested catalog\n',
  });
  await fs.chown(path.join(top, 'etc'), 1000, 1001);
  await fs.chmod(path.join(top, 'etc'), 0o750);
  await run('setfattr', ['-n', 'user.origin', '-v', 'top', path.join(top, 'etc')]);
  await fs.utimes(path.join(top, 'etc'), TOP_ETC_MTIME, TOP_ETC_MTIME);
}

const THIN_JSON = JSON.stringify({
  version: '1.0',
  layers: [BASE, TOP].map((digest) => ({ digest, url: `cvmfs://${REPO}/layers/${digest}` })),
});

async function setup(t: TestContext, rawWhiteouts: boolean, idleUnmountMs = 0) {
  const base = await tempDir(t, 'raw-layers-');
  await makeRawRepository(path.join(base, 'repos'));
  const home = path.join(base, 'home');
  const mounter = bindMounter(path.join(base, 'repos'), { rawWhiteouts });
  const newDriver = async () => {
    const driver = new OverlayDriver(path.join(base, 'init.json'), { mounter, idleUnmountMs }, { unmountDelayMs: 0 });
    t.after(() => driver.cleanup());
    return driver;
  };
  const driver = await newDriver();
  await driver.init({ Home: home, Opts: null, UIDMaps: null, GIDMaps: null });
  await driver.create({ ID: 'img' }, 'ro');
  await driver.applyDiff('img', '', chunks(await makeTar([file('thin.json', THIN_JSON)])));
  const container = async (id: string) => {
    await driver.create({ ID: `${id}-init`, Parent: 'img' }, 'rw');
    await driver.create({ ID: id, Parent: `${id}-init` }, 'rw');
  };
  return { home, driver, newDriver, container, mounter };
}

/** The pairs of whiteout layers under home, by name, with the inode of each. */
async function whiteoutDirs(home: string): Promise<Map<string, number>> {
  const dir = path.join(home, 'cvmfs-whiteouts');
  const names = await fs.readdir(dir).catch(() => []);
  return new Map(await Promise.all(names.map(async (name) => [name, (await fs.stat(path.join(dir, name))).ino] as const)));
}

test('layers shown raw stack with their deletions and opaque dirs, hiding every marker', async (t) => {
  const s = await setup(t, true);
  await s.container('c1');
  const root = await s.driver.get({ ID: 'c1' });
  const read = (p: string) => fs.readFile(path.join(root, p), 'utf8');
  assert.deepEqual((await fs.readdir(root)).sort(), ['etc', 'opaque', 'sub']);
  assert.deepEqual((await fs.readdir(path.join(root, 'etc'))).sort(), ['added', 'kept'], 'etc/.wh.deleted deletes etc/deleted');
  assert.equal(await read('etc/kept'), 'kept\n');
  assert.deepEqual(await fs.readdir(path.join(root, 'opaque')), ['new'], 'the opaque dir hides the base content and keeps its own');
  assert.deepEqual(await fs.readdir(path.join(root, 'sub', 'nested')), ['file'], 'a nested catalog marker is hidden too');
  assert.equal(await read('sub/nested/file'), 'in a nested catalog\n');
  for await (const { relPath } of walkTree(root)) {
    assert.doesNotMatch(path.basename(relPath), /^\.wh\.|^\.cvmfscatalog$/, `${relPath} shows`);
  }

  const etc = await fs.stat(path.join(root, 'etc'));
  assert.deepEqual([etc.mode & 0o7777, etc.uid, etc.gid, etc.mtimeMs / 1000], [0o750, 1000, 1001, TOP_ETC_MTIME], 'etc has the top layer\'s attributes');
  assert.equal((await xattrsOf(path.join(root, 'etc'))).get('user.origin')?.toString(), 'top');

  await fs.writeFile(path.join(root, 'etc', 'written'), 'by the container\n');
  await s.driver.put({ ID: 'c1' });
  const changes = await s.driver.changes({ ID: 'c1', Parent: 'c1-init' });
  assert.deepEqual(changes, [{ Path: '/etc', Kind: 0 }, { Path: '/etc/written', Kind: 1 }]);
});

test('whiteout layers are made once per repository layer and reused, also after a restart', async (t) => {
  const s = await setup(t, true);
  await s.container('c1');
  await s.container('c2');
  await s.driver.get({ ID: 'c1' });
  const made = await whiteoutDirs(s.home);
  assert.equal(made.size, 2, `one pair per layer: ${[...made.keys()].join(', ')}`);
  assert.ok([...made.keys()].every((name) => /^[0-9a-f]{64}$/.test(name)), 'no staging dir is left');
  await s.driver.put({ ID: 'c1' });
  await s.driver.get({ ID: 'c2' });
  assert.deepEqual(await whiteoutDirs(s.home), made, 'the second container used the same pairs');
  await s.driver.put({ ID: 'c2' });

  const restarted = await s.newDriver();
  await restarted.resume();
  const root = await restarted.get({ ID: 'c1' });
  assert.deepEqual(await whiteoutDirs(s.home), made, 'a restarted driver found them on disk');
  assert.deepEqual((await fs.readdir(path.join(root, 'etc'))).sort(), ['added', 'kept']);
  await restarted.put({ ID: 'c1' });
});

test('a client that presents image layers itself gets no whiteout layers', async (t) => {
  const s = await setup(t, false);
  await s.container('c1');
  const root = await s.driver.get({ ID: 'c1' });
  assert.ok((await fs.readdir(path.join(root, 'etc'))).includes('.wh.deleted'), 'the layers go to overlay as the client shows them');
  assert.equal((await whiteoutDirs(s.home)).size, 0);
});

test('loading the image makes the whiteout layers with its repository mount, before any container', async (t) => {
  const s = await setup(t, true, 60_000);
  const deadline = Date.now() + 10_000;
  // Names only: a pair's staging dir may be renamed between a listing and a stat.
  const finished = async () => (await fs.readdir(path.join(s.home, 'cvmfs-whiteouts')).catch(() => [])).filter((name) => /^[0-9a-f]{64}$/.test(name)).length;
  while ((await finished()) < 2) {
    assert.ok(Date.now() < deadline, 'the whiteout layers were not made after the thin layer was applied');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const made = await whiteoutDirs(s.home);
  await s.container('c1');
  const root = await s.driver.get({ ID: 'c1' });
  assert.deepEqual((await fs.readdir(path.join(root, 'etc'))).sort(), ['added', 'kept']);
  assert.deepEqual(await whiteoutDirs(s.home), made, 'Get used the pairs made while loading');
  assert.equal(s.mounter.mounts.length, 1, 'and the mount');
  await s.driver.put({ ID: 'c1' });
});
