// The image builders produce loadable archives whose layers really carry the features the
// driver tests rely on (GNU tar and the staging must not lose any of them), read back with the
// project's own tar reader. No dockerd needed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { busyboxRootfsTar, deepImage, FEATURE_CAPABILITY, featureImage } from '../helpers/images.ts';
import { run } from '../helpers/process.ts';
import { diffTrees, treeOfExport, type Tree, type TreeEntry } from '../helpers/tree.ts';

interface Unpacked {
  tag: string;
  diffIds: string[];
  layers: string[];
}

/** Unpacks a docker-archive into a temp dir removed after the test. */
async function unpack(t: TestContext, archive: string): Promise<Unpacked> {
  const dir = await mkdtemp(join(tmpdir(), 'gd-archive-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await run('tar', ['-xf', archive, '-C', dir]);
  const [manifest] = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
  const config = JSON.parse(readFileSync(join(dir, manifest.Config), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return { tag: manifest.RepoTags[0], diffIds: config.rootfs.diff_ids, layers: manifest.Layers.map((layer) => join(dir, layer)) };
}

function entry(tree: Tree, path: string): TreeEntry {
  const found = tree.get(path);
  assert.ok(found, `${path} is missing`);
  return found;
}

test('busybox rootfs has the binary and relative applet symlinks', async () => {
  const tree = await treeOfExport(await busyboxRootfsTar());
  assert.partialDeepStrictEqual(entry(tree, '/bin/busybox'), { type: 'file', mode: 0o755 });
  assert.partialDeepStrictEqual(entry(tree, '/bin/sh'), { type: 'symlink', linkTarget: 'busybox' });
  assert.partialDeepStrictEqual(entry(tree, '/usr/bin/env'), { type: 'symlink', linkTarget: '../../bin/busybox' });
  assert.partialDeepStrictEqual(entry(tree, '/tmp'), { type: 'directory', mode: 0o1777 });
});

test('featureImage layers carry every feature and the diff ids match', async (t) => {
  const image = await featureImage();
  const archive = await unpack(t, image.path);
  assert.equal(archive.tag, image.tag);
  assert.equal(archive.layers.length, 4);
  for (const [index, layer] of archive.layers.entries()) {
    const digest = createHash('sha256').update(readFileSync(layer)).digest('hex');
    assert.equal(archive.diffIds[index], `sha256:${digest}`, `diff id of layer ${index}`);
  }

  const features = await treeOfExport(archive.layers[1]);
  assert.deepEqual(entry(features, '/feat/cap-busybox').xattrs, [`security.capability=${FEATURE_CAPABILITY.toString('hex')}`]);
  assert.deepEqual(entry(features, '/feat/xattrs').xattrs, ['user.binary=fffe0010', 'user.comment=68656c6c6f']);
  assert.deepEqual(entry(features, '/feat/xattr-dir').xattrs, ['user.dir=64']);
  assert.partialDeepStrictEqual(entry(features, '/feat/setuid'), { mode: 0o4755 });
  assert.partialDeepStrictEqual(entry(features, '/feat/setgid'), { mode: 0o2755, gid: 50 });
  assert.partialDeepStrictEqual(entry(features, '/feat/sticky-dir'), { mode: 0o1777, uid: 1000 });
  assert.partialDeepStrictEqual(entry(features, '/feat/owned'), { uid: 1000, gid: 1000, mode: 0o640, mtime: 1500000000 });
  assert.partialDeepStrictEqual(entry(features, '/feat/links/owned'), { type: 'symlink', uid: 1000, mtime: 1400000000 });
  assert.partialDeepStrictEqual(entry(features, '/feat/empty'), { type: 'directory', uid: 2, gid: 3, mtime: 1300000000 });
  assert.partialDeepStrictEqual(entry(features, '/feat/dev/big-numbers'), { type: 'char', devmajor: 300, devminor: 70000 });
  assert.partialDeepStrictEqual(entry(features, '/feat/dev/block'), { type: 'block', devmajor: 7, devminor: 0 });
  assert.partialDeepStrictEqual(entry(features, '/feat/dev/fifo'), { type: 'fifo', mode: 0o620 });
  assert.deepEqual(entry(features, '/feat/hard/second').hardlinks, ['/feat/hard/original', '/feat/hard/second', '/feat/hardlink-elsewhere']);
  assert.ok([...features.keys()].some((path) => Buffer.byteLength(path) > 255), 'a path longer than 255 bytes');
  assert.ok(features.has('/feat/name with spaces ünïcødé ✓.txt'));

  const changes = await treeOfExport(archive.layers[2]);
  for (const marker of ['/feat/del/.wh.file', '/feat/del/.wh.dir', '/feat/opq/.wh..wh..opq', '/feat/.wh.dir-readded']) {
    assert.partialDeepStrictEqual(entry(changes, marker), { type: 'file', size: 0 });
  }
  const moreChanges = await treeOfExport(archive.layers[3]);
  assert.ok(moreChanges.has('/bin/.wh.vi'));
  assert.ok(moreChanges.has('/feat/dir-readded/new-b'));
});

test('deepImage has one layer per requested layer, each with its own diff id', async (t) => {
  const archive = await unpack(t, (await deepImage(12)).path);
  assert.equal(archive.layers.length, 12);
  assert.equal(new Set(archive.diffIds).size, 12);
  const tenth = await treeOfExport(archive.layers[10]);
  assert.ok(tenth.has('/deep/.wh.layer-5'));
  assert.equal(entry(tenth, '/deep/counter').size, 3);
});

test('diffTrees names every kind of difference', async () => {
  const base = await treeOfExport(await busyboxRootfsTar());
  const changed: Tree = new Map([...base].map(([path, record]) => [path, { ...record }]));
  changed.delete('/bin/ls');
  changed.set('/extra', { ...entry(base, '/etc/passwd'), path: '/extra' });
  entry(changed, '/etc/passwd').mode = 0o600;
  entry(changed, '/bin/sh').linkTarget = 'elsewhere';
  assert.deepEqual(diffTrees(base, base), []);
  assert.deepEqual(diffTrees(base, changed, ['overlay2', 'plugin']), [
    '/bin/ls: only in overlay2 (symlink)',
    '/bin/sh: linkTarget overlay2=busybox plugin=elsewhere',
    '/etc/passwd: mode overlay2=0644 plugin=0600',
    '/extra: only in plugin (file)',
  ]);
});
