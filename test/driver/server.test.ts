// The plugin's HTTP face in-process: serveDriver(new OverlayDriver(...)) on a temp socket, spoken
// to the way dockerd 20.10 speaks to it (shared/docs/graphdriver-protocol-and-upstream.md §3,
// dockerd-e2e-observations.md §2 and §7), with real overlay mounts below a temp Home.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../../src/core/log.ts';
import { treeSize } from '../../src/core/fs/walk.ts';
import { isMountPoint, mountsBelow, unmount } from '../../src/core/fs/mounts.ts';
import { OverlayDriver } from '../../src/driver/overlay-driver.ts';
import { serveDriver, type DriverServer } from '../../src/driver/server.ts';
import { describeTree, dir, entry, exists, file, makeTar, readArchive, run, symlink, tempDir } from '../overlay/fixtures.ts';
import { pollUntil } from '../helpers/process.ts';
import { collect, json, PluginClient } from './plugin-client.ts';
import { refusingMounter } from './test-mounters.ts';

// Expected failures would otherwise fill the output; the replies carry the messages.
log.level = -1;

interface Plugin {
  base: string;
  home: string;
  stateFile: string;
  socket: string;
  driver: OverlayDriver;
  server: DriverServer;
  client: PluginClient;
}

/**
 * A plugin process's worth of driver and server; `from` shares the state file (a restart).
 * Layers are unmounted at their last Put unless `unmountDelayMs` says otherwise.
 */
async function startPlugin(t: TestContext, from?: Plugin, unmountDelayMs = 0): Promise<Plugin> {
  const base = from?.base ?? (await tempDir(t, 'driver-server-'));
  const home = path.join(base, 'home');
  const stateFile = path.join(base, 'state', 'init.json');
  const socket = path.join(base, `plugin-${randomBytes(3).toString('hex')}.sock`);
  const driver = new OverlayDriver(stateFile, { mounter: refusingMounter }, { unmountDelayMs });
  if (from) await driver.resume();
  const server = await serveDriver(driver, socket);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await server.close();
  };
  t.after(close);
  const client = new PluginClient(socket, t);
  return { base, home, stateFile, socket, driver, server: { close }, client };
}

async function initPlugin(t: TestContext, unmountDelayMs = 0): Promise<Plugin> {
  const plugin = await startPlugin(t, undefined, unmountDelayMs);
  await plugin.client.ok('GraphDriver.Init', { Home: plugin.home, Opts: null, UIDMaps: null, GIDMaps: null });
  t.after(() => plugin.driver.cleanup());
  return plugin;
}

const T = 1_500_000_000;

async function baseLayerTar(): Promise<Buffer> {
  return makeTar([
    dir('bin', { mtime: T }),
    file('bin/ls', 'ls-binary', { mode: 0o755, mtime: T }),
    file('bin/sh', 'sh-binary', { mode: 0o755, mtime: T }),
    symlink('bin/busybox', 'sh', { mtime: T }),
    dir('etc', { mtime: T }),
    file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n', { mtime: T }),
    dir('opt', { mtime: T }),
    file('opt/old', 'old', { mtime: T }),
  ]);
}

async function secondLayerTar(): Promise<Buffer> {
  return makeTar([
    dir('bin', { mtime: T + 1 }),
    entry({ path: 'bin/.wh.ls', mode: 0o600 }),
    dir('opt', { mtime: T + 1 }),
    entry({ path: 'opt/.wh..wh..opq', mode: 0o755 }),
    file('opt/new', 'new', { mtime: T + 1 }),
  ]);
}

/** `docker load` of a two-layer image: Create + ApplyDiff per layer, as in §2.2. */
async function loadImage(client: PluginClient): Promise<void> {
  await client.ok('GraphDriver.Create', { ID: 'base' });
  const first = await client.applyDiff('base', '', await baseLayerTar());
  assert.equal(first.status, 200, first.body.toString());
  assert.deepEqual(json(first), { Size: 'ls-binary'.length + 'sh-binary'.length + 'sh'.length + 26 + 3 });
  await client.ok('GraphDriver.Create', { ID: 'top', Parent: 'base' });
  const second = await client.applyDiff('top', 'base', await secondLayerTar());
  assert.equal(second.status, 200, second.body.toString());
  assert.deepEqual(json(second), { Size: 3 });
}

/** A container as in §2.4: an init layer written through its own mount, then the container layer. */
async function createContainer(client: PluginClient, id: string, image: string): Promise<void> {
  await client.ok('GraphDriver.CreateReadWrite', { ID: `${id}-init`, Parent: image });
  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: `${id}-init` });
  await fs.mkdir(path.join(Dir, 'etc'), { recursive: true });
  await fs.writeFile(path.join(Dir, 'etc/hostname'), '');
  await fs.writeFile(path.join(Dir, '.dockerenv'), '');
  await client.ok('GraphDriver.Put', { ID: `${id}-init` });
  await client.ok('GraphDriver.CreateReadWrite', { ID: id, Parent: `${id}-init` });
}

test('Activate, Init, Capabilities and Status answer as dockerd expects', async (t) => {
  const { client, home, stateFile, driver } = await startPlugin(t);
  t.after(() => driver.cleanup());

  const activate = await client.call('Plugin.Activate');
  assert.equal(activate.status, 200);
  assert.deepEqual(json(activate), { Implements: ['GraphDriver'] });

  const init = await client.call('GraphDriver.Init', { Home: home, Opts: null, UIDMaps: null, GIDMaps: null });
  assert.equal(init.status, 200, init.body.toString());
  assert.ok(!json(init).Err);
  assert.ok((await fs.lstat(home)).isDirectory(), 'the plugin creates Home; dockerd does not');
  assert.equal(JSON.parse(await fs.readFile(stateFile, 'utf8')).Home, home, 'Init is remembered for a restart');

  const capabilities = await client.call('GraphDriver.Capabilities', {});
  assert.equal(capabilities.status, 200);
  assert.deepEqual(json(capabilities), { Capabilities: { ReproducesExactDiffs: false } });

  const status = await client.ok<{ Status: [string, string][] }>('GraphDriver.Status', {});
  const fields = new Map(status.Status);
  assert.equal(fields.get('Backing Filesystem'), 'extfs');
  assert.equal(fields.get('Layers'), '0');

  const unknown = await client.call('GraphDriver.Frobnicate', {});
  assert.equal(unknown.status, 404, 'dockerd treats 404 as "not implemented"');
});

test('an unknown storage option fails Init with the known options named, and nothing is initialised', async (t) => {
  const { client, home, stateFile, driver } = await startPlugin(t);
  t.after(() => driver.cleanup());
  const init = await client.call('GraphDriver.Init', { Home: home, Opts: ['overlay2.size=10G'], UIDMaps: null, GIDMaps: null });
  assert.equal(init.status, 500);
  const { Err } = json(init) as { Err: string };
  assert.match(Err, /overlay2\.size/);
  assert.match(Err, /known options: overlay2\.override_kernel_check/);
  assert.equal(await exists(stateFile), false);

  const create = await client.call('GraphDriver.Create', { ID: 'x' });
  assert.equal(create.status, 500);
  assert.match((json(create) as { Err: string }).Err, /not been initialised/);

  const badUserns = await client.call('GraphDriver.Init', { Home: home, Opts: null, UIDMaps: [{ container_id: 0, host_id: 100000, size: 65536 }], GIDMaps: null });
  assert.equal(badUserns.status, 500);
  assert.match((json(badUserns) as { Err: string }).Err, /userns-remap/);

  const good = await client.call('GraphDriver.Init', { Home: home, Opts: ['overlay2.override_kernel_check=true'], UIDMaps: null, GIDMaps: null });
  assert.equal(good.status, 200, good.body.toString());
  assert.deepEqual(JSON.parse(await fs.readFile(stateFile, 'utf8')).Opts, ['overlay2.override_kernel_check=true']);
});

test('a container\'s life: load, create, Get/Put, Changes, DiffSize, GetMetadata, Diff, Remove', async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  assert.deepEqual(await client.ok('GraphDriver.Exists', { ID: 'base' }), { Exists: true });
  assert.deepEqual(await client.ok('GraphDriver.Exists', { ID: 'nope' }), { Exists: false });

  // A layer without parent is its diff directory, not mounted.
  const baseDir = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'base' });
  assert.equal(baseDir.Dir, path.join(home, 'base', 'diff'));
  assert.equal(await isMountPoint(baseDir.Dir), false);
  await client.ok('GraphDriver.Put', { ID: 'base' });

  await createContainer(client, 'c1', 'top');
  assert.equal(await isMountPoint(path.join(home, 'c1-init', 'merged')), false, 'Put of the init layer unmounted it');

  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c1' });
  assert.equal(Dir, path.join(home, 'c1', 'merged'));
  assert.ok(await isMountPoint(Dir));
  // The merged view: the whiteout hides bin/ls, the opaque opt hides opt/old, init's files show.
  assert.deepEqual((await fs.readdir(path.join(Dir, 'bin'))).sort(), ['busybox', 'sh']);
  assert.deepEqual(await fs.readdir(path.join(Dir, 'opt')), ['new']);
  assert.equal(await fs.readFile(path.join(Dir, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  assert.ok(await exists(path.join(Dir, '.dockerenv')));
  // What the container does (§2.5): add, delete, recreate a directory.
  await fs.writeFile(path.join(Dir, 'new'), 'x\n');
  await fs.rm(path.join(Dir, 'bin/sh'));
  await fs.rm(path.join(Dir, 'opt'), { recursive: true });
  await fs.mkdir(path.join(Dir, 'opt'));
  await fs.writeFile(path.join(Dir, 'opt/z'), 'y\n');
  await client.ok('GraphDriver.Put', { ID: 'c1' });
  assert.equal(await isMountPoint(Dir), false);

  const changes = await client.ok<{ Changes: Array<{ Path: string; Kind: number }> }>('GraphDriver.Changes', { ID: 'c1', Parent: 'c1-init' });
  assert.deepEqual(changes.Changes, [
    { Path: '/bin', Kind: 0 },
    { Path: '/bin/sh', Kind: 2 },
    { Path: '/new', Kind: 1 },
    { Path: '/opt', Kind: 2 },
    { Path: '/opt/z', Kind: 1 },
  ]);
  assert.deepEqual(await client.ok('GraphDriver.DiffSize', { ID: 'c1', Parent: 'c1-init' }), { Size: 4 });

  const metadata = await client.ok<{ Metadata: Record<string, string> }>('GraphDriver.GetMetadata', { ID: 'c1' });
  assert.deepEqual(metadata.Metadata, {
    WorkDir: path.join(home, 'c1', 'work'),
    MergedDir: path.join(home, 'c1', 'merged'),
    UpperDir: path.join(home, 'c1', 'diff'),
    LowerDir: ['c1-init', 'top', 'base'].map((id) => path.join(home, id, 'diff')).join(':'),
  });
  const baseMetadata = await client.ok<{ Metadata: Record<string, string> }>('GraphDriver.GetMetadata', { ID: 'base' });
  assert.equal(baseMetadata.Metadata.LowerDir, undefined);

  const diff = await client.diffStream('c1', 'c1-init');
  assert.equal(diff.statusCode, 200);
  const entries = await readArchive(diff);
  assert.deepEqual(entries.map((e) => `${e.type} ${e.path}`), [
    'directory bin/',
    'file bin/.wh.sh',
    'file new',
    'directory opt/',
    'file opt/.wh..wh..opq',
    'file opt/z',
  ]);
  assert.equal(entries.find((e) => e.path === 'new')!.data.toString(), 'x\n');

  await client.ok('GraphDriver.Remove', { ID: 'c1' });
  await client.ok('GraphDriver.Remove', { ID: 'c1-init' });
  assert.deepEqual(await client.ok('GraphDriver.Exists', { ID: 'c1' }), { Exists: false });
  assert.equal(await exists(path.join(home, 'c1')), false);
  // Their files are deleted after the answers, under a name that marks them as going.
  await pollUntil(async () => (await fs.readdir(home)).every((name) => !name.startsWith('.')), 10_000, () => 'the files of the removed layers are deleted');
  const links = await fs.readdir(path.join(home, 'l'));
  assert.equal(links.length, 2, 'the short links of removed layers are gone');
  const status = await client.ok<{ Status: [string, string][] }>('GraphDriver.Status', {});
  assert.equal(new Map(status.Status).get('Layers'), '2');
});

test('errors are HTTP 500 with {"Err"} naming the layer', async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  const err = async (method: string, body: unknown, pattern: RegExp): Promise<void> => {
    const reply = await client.call(method, body);
    assert.equal(reply.status, 500, `${method}: ${reply.body.toString()}`);
    const parsed = json(reply) as { Err: string };
    assert.equal(typeof parsed.Err, 'string');
    assert.match(parsed.Err, pattern, method);
  };
  await err('GraphDriver.Get', { ID: 'missing-layer' }, /missing-layer/);
  await err('GraphDriver.GetMetadata', { ID: 'missing-layer' }, /missing-layer/);
  await err('GraphDriver.Create', { ID: 'base' }, /base.*already exists/);
  await err('GraphDriver.Create', { ID: 'orphan', Parent: 'no-such-parent' }, /no-such-parent.*orphan|orphan.*no-such-parent/);
  await err('GraphDriver.Create', { ID: '../escape' }, /invalid layer id/);
  await err('GraphDriver.CreateReadWrite', { ID: 'sized', Parent: 'top', StorageOpt: { size: '1G' } }, /sized.*size/);
  await err('GraphDriver.Changes', { ID: 'top', Parent: 'wrong-parent' }, /top.*wrong-parent/);

  // Not JSON at all.
  const request = client.open('/GraphDriver.Get', { 'Content-Length': 5 });
  const reply = new Promise<import('node:http').IncomingMessage>((resolve) => request.once('response', resolve));
  request.end('{oops');
  const malformed = await collect(await reply);
  assert.equal(malformed.status, 500);
  assert.match((json(malformed) as { Err: string }).Err, /malformed JSON/);

  // ApplyDiff of a corrupt tar: the layer named, its diff left empty, the body read to its end.
  await client.ok('GraphDriver.Create', { ID: 'broken' });
  const archive = await makeTar([file('a', 'a'.repeat(100_000)), file('b', 'b')]);
  const corrupt = Buffer.from(archive);
  corrupt.fill(0x41, 100_352 + 512, 100_352 + 1024); // garbage where b's header is
  corrupt.write('garbage!', 100_352 + 512);
  const applied = await client.applyDiff('broken', '', corrupt.subarray(0, 100_352 + 512 + 1024));
  assert.equal(applied.status, 500);
  assert.match((json(applied) as { Err: string }).Err, /broken/);
  assert.deepEqual(await fs.readdir(path.join(home, 'broken', 'diff')), []);
  const truncated = await client.applyDiff('broken', '', archive.subarray(0, 50_000));
  assert.equal(truncated.status, 500);
  assert.match((json(truncated) as { Err: string }).Err, /broken.*truncated/);

  // Diff errors must not be a 200: dockerd would take the body as the tar.
  const diff = await client.diffStream('top', 'not-its-parent');
  const diffReply = await collect(diff);
  assert.equal(diffReply.status, 500);
  assert.match((json(diffReply) as { Err: string }).Err, /top/);

  // Remove of a layer that is not there is not an error (overlay2 does RemoveAll).
  assert.deepEqual(await client.ok('GraphDriver.Remove', { ID: 'never-was' }), {});
  // The connection is still usable after all that.
  assert.deepEqual(await client.ok('GraphDriver.Exists', { ID: 'top' }), { Exists: true });
});

test('a restarted plugin (a second driver on the same state file, no Init) serves the existing layers', async (t) => {
  const first = await initPlugin(t);
  await loadImage(first.client);
  await createContainer(first.client, 'c2', 'top');
  const { Dir } = await first.client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c2' });
  await fs.writeFile(path.join(Dir, 'left-running'), 'r');
  await first.server.close();
  assert.ok(await isMountPoint(Dir), 'the container stays mounted across the restart');

  const second = await startPlugin(t, first);
  const client = second.client;
  assert.deepEqual(await client.ok('GraphDriver.Exists', { ID: 'top' }), { Exists: true });
  assert.equal(new Map((await client.ok<{ Status: [string, string][] }>('GraphDriver.Status', {})).Status).get('Layers'), '4');
  const diff = await readArchive(await client.diffStream('top', 'base'));
  assert.deepEqual(diff.map((e) => e.path), ['bin/', 'bin/.wh.ls', 'opt/', 'opt/.wh..wh..opq', 'opt/new']);
  const changes = await client.ok<{ Changes: Array<{ Path: string; Kind: number }> }>('GraphDriver.Changes', { ID: 'c2', Parent: 'c2-init' });
  assert.deepEqual(changes.Changes, [{ Path: '/left-running', Kind: 1 }]);
  // The mount the first process handed out counts as one Get: another Get reuses it (no second
  // overlay stacked on merged), and it takes two Puts to unmount.
  const again = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c2' });
  assert.equal(again.Dir, Dir);
  assert.deepEqual(await mountsBelow(Dir), [Dir]);
  assert.equal(await fs.readFile(path.join(again.Dir, 'left-running'), 'utf8'), 'r');
  await client.ok('GraphDriver.Put', { ID: 'c2' });
  assert.ok(await isMountPoint(Dir));
  await client.ok('GraphDriver.Put', { ID: 'c2' });
  assert.equal(await isMountPoint(Dir), false);
  await client.ok('GraphDriver.Get', { ID: 'c2' });
  await client.ok('GraphDriver.Cleanup', {});
  assert.deepEqual(await mountsBelow(second.home), []);
});

test('a Diff stream is served while the ApplyDiff it feeds is in progress (docker commit)', { timeout: 60_000 }, async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  await createContainer(client, 'c3', 'top');
  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c3' });
  // Far more than socket buffers hold: serving one call at a time would deadlock here.
  const big = randomBytes(16 * 1024 * 1024);
  await fs.writeFile(path.join(Dir, 'big'), big);
  await fs.writeFile(path.join(Dir, 'etc/motd'), 'hello\n');
  await fs.rm(path.join(Dir, 'bin/sh'));

  // §2.6: dockerd opens the Diff, then creates the new layer and pipes the Diff into ApplyDiff.
  const diff = await client.diffStream('c3', 'c3-init');
  assert.equal(diff.statusCode, 200);
  let diffEnded = false;
  diff.once('end', () => { diffEnded = true; });
  await client.ok('GraphDriver.Create', { ID: 'committed', Parent: 'top' });
  assert.equal(diffEnded, false, 'Create was answered while the Diff was still open');
  const applied = await client.applyDiff('committed', 'top', diff as AsyncIterable<Buffer>);
  await client.ok('GraphDriver.Put', { ID: 'c3' });
  assert.equal(applied.status, 200, applied.body.toString());
  assert.deepEqual(json(applied), { Size: await treeSize(path.join(home, 'c3', 'diff')) });

  // The committed layer holds exactly the container's changes.
  const committed = await describeTree(path.join(home, 'committed', 'diff'));
  const container = await describeTree(path.join(home, 'c3', 'diff'), { xattrFilter: (name) => !name.startsWith('trusted.overlay.') });
  assert.deepEqual(committed, container);
  const { Dir: image } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'committed' });
  assert.ok((await fs.readFile(path.join(image, 'big'))).equals(big));
  assert.deepEqual((await fs.readdir(path.join(image, 'bin'))).sort(), ['busybox']);
  await client.ok('GraphDriver.Put', { ID: 'committed' });
});

test('Get twice and Put once keeps the mount; the second Put unmounts', async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  await createContainer(client, 'c4', 'top');
  const merged = path.join(home, 'c4', 'merged');
  const first = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c4' });
  const second = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c4' });
  assert.equal(first.Dir, merged);
  assert.equal(second.Dir, merged);
  assert.equal((await mountsBelow(merged)).length, 1, 'mounted once, not stacked');
  await client.ok('GraphDriver.Put', { ID: 'c4' });
  assert.ok(await isMountPoint(merged), 'still mounted after the first Put');
  await fs.writeFile(path.join(merged, 'still-there'), 'yes');
  await client.ok('GraphDriver.Put', { ID: 'c4' });
  assert.equal(await isMountPoint(merged), false);
  assert.equal(await fs.readFile(path.join(home, 'c4', 'diff', 'still-there'), 'utf8'), 'yes');
  // A Put too many is harmless.
  await client.ok('GraphDriver.Put', { ID: 'c4' });

  // Image layers are mounted read-only (docker save reads them through Get).
  const image = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'top' });
  assert.equal(image.Dir, path.join(home, 'top', 'merged'));
  assert.deepEqual((await fs.readdir(path.join(image.Dir, 'bin'))).sort(), ['busybox', 'sh']);
  await assert.rejects(fs.writeFile(path.join(image.Dir, 'nope'), 'x'), { code: 'EROFS' });
  await client.ok('GraphDriver.Put', { ID: 'top' });
  assert.equal(await isMountPoint(image.Dir), false);
});

/** The kernel's id of the mount at `dir` (a new mount gets a new one), or undefined. */
async function mountIdAt(dir: string): Promise<string | undefined> {
  const lines = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.map((line) => line.split(' ')).findLast((fields) => fields[4] === dir)?.[0];
}

test('a layer stays mounted a moment after its last Put: a Get in time takes the mount back, Remove and stopping unmount it at once', async (t) => {
  const delayMs = 1500;
  const { client, home, driver } = await initPlugin(t, delayMs);
  await loadImage(client);
  await createContainer(client, 'c6', 'top');
  const init = path.join(home, 'c6-init', 'merged');
  assert.ok(await isMountPoint(init), 'the init layer, just Put, is still mounted');

  // Created, then started: the start's Get takes back the mount the create's Put left.
  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c6' });
  const mounted = await mountIdAt(Dir);
  await client.ok('GraphDriver.Put', { ID: 'c6' });
  await client.ok('GraphDriver.Get', { ID: 'c6' });
  assert.equal(await mountIdAt(Dir), mounted, 'the same mount');
  await client.ok('GraphDriver.Put', { ID: 'c6' });

  const deadline = Date.now() + 10 * delayMs;
  while ((await isMountPoint(init)) && Date.now() < deadline) await sleep(20);
  assert.equal(await isMountPoint(init), false, 'unmounted once the delay passed');

  // Unmounted behind the driver's back during the delay: the next Get mounts it afresh.
  await client.ok('GraphDriver.Get', { ID: 'c6' });
  await client.ok('GraphDriver.Put', { ID: 'c6' });
  await unmount(Dir);
  const again = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c6' });
  assert.ok(await isMountPoint(again.Dir));
  assert.ok((await fs.readdir(path.join(again.Dir, 'bin'))).includes('busybox'));
  await client.ok('GraphDriver.Put', { ID: 'c6' });
  await client.ok('GraphDriver.Remove', { ID: 'c6' });
  assert.equal(await isMountPoint(Dir), false, 'Remove does not wait for the delay');
  assert.equal(await exists(path.join(home, 'c6')), false);

  // A plugin that stops unmounts what waits out its delay; what is in use stays.
  await createContainer(client, 'c7', 'top');
  const running = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c7' });
  await driver.unmountPending();
  assert.equal(await isMountPoint(path.join(home, 'c7-init', 'merged')), false);
  assert.ok(await isMountPoint(running.Dir));
  await client.ok('GraphDriver.Put', { ID: 'c7' });
});

test('Remove of a mounted layer unmounts it and removes it', async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  await createContainer(client, 'c5', 'top');
  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c5' });
  await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c5' });
  assert.ok(await isMountPoint(Dir));
  // §7.13: docker rm sends Remove without a Put first.
  await client.ok('GraphDriver.Remove', { ID: 'c5' });
  assert.equal(await isMountPoint(Dir), false);
  assert.equal(await exists(path.join(home, 'c5')), false);
  assert.deepEqual(await mountsBelow(home), []);
  // The image below is untouched, and the name can be used again.
  assert.deepEqual(await fs.readdir(path.join(home, 'top', 'diff', 'opt')), ['new']);
  await client.ok('GraphDriver.CreateReadWrite', { ID: 'c5', Parent: 'c5-init' });
  const again = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c5' });
  assert.deepEqual(await fs.readdir(path.join(again.Dir, 'opt')), ['new']);
  await client.ok('GraphDriver.Put', { ID: 'c5' });
});

test('Cleanup returns once the files of removed layers are deleted', async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  await createContainer(client, 'c8', 'top');
  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c8' });
  await fs.mkdir(path.join(Dir, 'many'));
  for (let i = 0; i < 2000; i++) await fs.writeFile(path.join(Dir, 'many', `f${i}`), 'x');
  await client.ok('GraphDriver.Put', { ID: 'c8' });
  await client.ok('GraphDriver.Remove', { ID: 'c8' });
  await client.ok('GraphDriver.Remove', { ID: 'c8-init' });
  await client.ok('GraphDriver.Cleanup', {});
  assert.deepEqual((await fs.readdir(home)).filter((name) => name.startsWith('.')), []);
});

test('a Diff that fails after the tar has started cuts the connection, never ending a short tar cleanly', async (t) => {
  const { client, home } = await initPlugin(t);
  await loadImage(client);
  await createContainer(client, 'c6', 'top');
  const { Dir } = await client.ok<{ Dir: string }>('GraphDriver.Get', { ID: 'c6' });
  await fs.writeFile(path.join(Dir, 'aaa'), randomBytes(1024 * 1024));
  await client.ok('GraphDriver.Put', { ID: 'c6' });
  // A /proc file says size 0 and then has content: the export fails in the middle of the tar.
  const trap = path.join(home, 'c6', 'diff', 'zzz-proc');
  await fs.writeFile(trap, '');
  await run('mount', ['--bind', '/proc/version', trap]);
  t.after(async () => {
    if (await isMountPoint(trap)) await run('umount', [trap]);
  });

  const diff = await client.diffStream('c6', 'c6-init');
  if (diff.statusCode === 200) {
    await assert.rejects(readArchive(diff));
  } else {
    const reply = await collect(diff);
    assert.equal(reply.status, 500);
    assert.match((json(reply) as { Err: string }).Err, /c6/);
  }
  // The plugin carries on serving.
  assert.deepEqual(await client.ok('GraphDriver.Exists', { ID: 'c6' }), { Exists: true });
});
