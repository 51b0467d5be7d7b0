// The driver judged against Docker's own overlay2 on the same images: a container's file tree
// (names, types, modes, owners, xattrs, device numbers, content) must be identical.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd, type PluginProcess } from '../helpers/dockerd.ts';
import { deepImage, featureImage } from '../helpers/images.ts';
import { diffTrees, exportTree, tarOfRunningRoot, treeOfExport, type Tree } from '../helpers/tree.ts';

// A container that changes what lower layers hold: a deleted file, a directory removed and
// made again (an opaque directory in the container layer), new files and owners.
const CHANGES = [
  'rm -f /bin/ls',
  'rm -rf /feat/opaque && mkdir -p /feat/opaque/again && echo new > /feat/opaque/again/file',
  'echo changed > /feat/modified-later 2>/dev/null || true',
  'mkdir -p /committed && echo c > /committed/f && chown 1234:5678 /committed/f && chmod 4711 /committed/f',
  'ln /committed/f /committed/hard',
  // The two daemons run this at slightly different moments; fixed times keep the trees comparable.
  "touch -d '2020-09-13 12:26:40' /committed/f /feat/modified-later /feat/opaque/again/file /feat/opaque/again /feat/opaque /committed /feat /bin",
].join('; ');

describe('conformance with Docker overlay2', () => {
  const name = uniquePluginName();
  let plugin: PluginProcess;
  let ours: Dockerd;
  let reference: Dockerd;

  before(async () => {
    plugin = await startLegacyPlugin({ name });
    ours = await startDockerd({ storageDriver: name });
    reference = await startDockerd({ storageDriver: 'overlay2' });
  });
  after(async () => {
    await reference?.stop();
    await ours?.stop();
    await plugin?.stop();
  });

  async function onBoth<T>(task: (dockerd: Dockerd) => Promise<T>): Promise<[T, T]> {
    return Promise.all([task(ours), task(reference)]);
  }

  function assertSameTrees([mine, theirs]: [Tree, Tree]): void {
    assert.ok(theirs.size > 10, `the overlay2 tree has ${theirs.size} entries`);
    assert.deepEqual(diffTrees(mine, theirs, ['serve-driver', 'overlay2']), []);
  }

  test('a multi-layer image with every file feature exports identically', async () => {
    const image = await featureImage();
    await onBoth((d) => d.docker(['load', '-i', image.path]));
    assertSameTrees(await onBoth((d) => exportTree(d, image.tag)));
  });

  test('user xattrs, which docker export drops, are identical inside running containers', async () => {
    const image = await featureImage();
    const trees = await onBoth(async (d) => {
      const id = (await d.docker(['run', '-d', '--network', 'none', image.tag, 'sleep', '600'])).stdout.trim();
      try {
        const pid = Number((await d.docker(['inspect', '--format', '{{.State.Pid}}', id])).stdout);
        const tarPath = join(d.dir, 'running-root.tar');
        await tarOfRunningRoot(pid, ['feat'], tarPath);
        return await treeOfExport(tarPath);
      } finally {
        await d.docker(['rm', '-f', id]);
      }
    });
    assert.ok([...trees[1].values()].some((e) => e.xattrs.some((x) => x.startsWith('user.'))), 'the image carries user.* xattrs');
    assertSameTrees(trees);
  });

  test('an image committed from a changed container exports identically', async () => {
    const image = await featureImage();
    await onBoth(async (d) => {
      await d.docker(['run', '--name', 'changer', '--network', 'none', image.tag, 'sh', '-c', CHANGES]);
      await d.docker(['commit', 'changer', 'gd/changed:1']);
      await d.docker(['rm', 'changer']);
    });
    assertSameTrees(await onBoth((d) => exportTree(d, 'gd/changed:1')));
  });

  test('an image of 125 layers runs and exports identically', async () => {
    const image = await deepImage(125);
    await onBoth((d) => d.docker(['load', '-i', image.path]));
    const [mine, theirs] = await onBoth((d) => d.docker(['run', '--rm', '--network', 'none', image.tag, 'cat', '/deep/counter']));
    assert.equal(mine.stdout, theirs.stdout);
    assert.equal(mine.stdout, '124\n');
    assertSameTrees(await onBoth((d) => exportTree(d, image.tag)));
  });
});
