// Proves the harness against Docker's built-in overlay2 driver, and pins down what overlay2
// shows for the test images: the behaviour the plugin's conformance tests must reproduce.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { bigImage, busyboxRootfsTar, deepImage, FEATURE_CAPABILITY, featureImage } from '../helpers/images.ts';
import { stopAfter } from '../helpers/process.ts';
import { diffTrees, exportTree, tarOfRunningRoot, treeOfExport, type Tree, type TreeEntry } from '../helpers/tree.ts';

const RUN = ['run', '--rm', '--network', 'none'];
const CAPABILITY = `security.capability=${FEATURE_CAPABILITY.toString('hex')}`;
/** Every staged entry's mtime unless the image asks for another (2020-01-01). */
const DEFAULT_MTIME = 1577836800;

// Run inside a feature container; its output is compared line for line.
const FEATURE_PROBE = `
cd /feat
stat -c '%n|%F|%a|%u:%g|%s|%Y' owned setuid setgid mode-0000 hard/original modify/content-changes modify/meta-changes kind/dir-becomes-file
stat -c '%n|%F|%a|%u:%g|%Y' setgid-dir sticky-dir empty del kind/file-becomes-dir
stat -c '%n|%F|%t:%T|%a' dev/char dev/block dev/big-numbers dev/fifo
stat -c '%n|%h' hard/second hardlink-elsewhere
for link in links/relative links/absolute links/dangling links/to-dir; do echo "$link -> $(readlink $link)"; done
cat links/relative modify/content-changes 'name with spaces ünïcødé ✓.txt'
ls -A del opq opq/newdir dir-readded
for path in /bin/vi added-in-2 del/file del/dir opq/old1 opq/olddir dir-readded/old-a; do
  test -e $path || test -L $path || echo "gone: $path"
done
`;

const FEATURE_PROBE_OUTPUT = `owned|regular file|640|1000:1000|19|1500000000
setuid|regular file|4755|0:0|22|1577836800
setgid|regular file|2755|0:50|22|1577836800
mode-0000|regular file|0|0:0|15|1577836800
hard/original|regular file|604|1000:0|11|1577836800
modify/content-changes|regular file|600|1000:0|19|1577836800
modify/meta-changes|regular file|755|1001:1001|5|1577836800
kind/dir-becomes-file|regular file|644|0:0|18|1577836800
setgid-dir|directory|2775|0:100|1577836800
sticky-dir|directory|1777|1000:1000|1577836800
empty|directory|750|2:3|1300000000
del|directory|755|0:0|1577836800
kind/file-becomes-dir|directory|755|0:0|1577836800
dev/char|character special file|1:3|666
dev/block|block special file|7:0|660
dev/big-numbers|character special file|12c:11170|600
dev/fifo|fifo|0:0|620
hard/second|3
hardlink-elsewhere|3
links/relative -> ../owned
links/absolute -> /etc/passwd
links/dangling -> /nonexistent/target
links/to-dir -> ../hard
owned by 1000:1000
v2, longer than v1
odd name
del:
keep

dir-readded:
new-b

opq:
new1
newdir

opq/newdir:
new2
gone: /bin/vi
gone: added-in-2
gone: del/file
gone: del/dir
gone: opq/old1
gone: opq/olddir
gone: dir-readded/old-a
`;

function entry(tree: Tree, path: string): TreeEntry {
  const found = tree.get(path);
  assert.ok(found, `${path} is missing`);
  return found;
}

function childrenOf(tree: Tree, dir: string): string[] {
  return [...tree.keys()].filter((path) => path.startsWith(`${dir}/`)).sort();
}

function subtree(tree: Tree, dir: string): Tree {
  return new Map([...tree].filter(([path]) => path === dir || path.startsWith(`${dir}/`)));
}

test('overlay2 baseline: the harness drives dockerd and reads what containers see', { timeout: 240_000 }, async (t) => {
  const dockerd: Dockerd = stopAfter(t, await startDockerd({ storageDriver: 'overlay2' }));
  const feature = await featureImage();

  await t.test('docker import of the busybox rootfs runs', async () => {
    await dockerd.docker(['import', await busyboxRootfsTar(), 'cvmfsgd-test/busybox:latest']);
    const { stdout } = await dockerd.docker([...RUN, 'cvmfsgd-test/busybox:latest', 'echo', 'hi']);
    assert.equal(stdout, 'hi\n');
  });

  await t.test('docker load of featureImage; a container sees every feature', async () => {
    await dockerd.docker(['load', '--input', feature.path]);
    const { stdout } = await dockerd.docker([...RUN, feature.tag, 'sh', '-c', FEATURE_PROBE]);
    assert.equal(stdout, FEATURE_PROBE_OUTPUT);
  });

  await t.test('docker export shows the merged layers, with only security.capability of the xattrs', async () => {
    const tree = await exportTree(dockerd, feature.tag);
    assert.ok(![...tree.keys()].some((path) => path.includes('/.wh.')), 'no whiteout markers leak into the export');
    for (const gone of ['/bin/vi', '/feat/added-in-2', '/feat/del/file', '/feat/del/dir', '/feat/opq/old1', '/feat/opq/olddir']) {
      assert.ok(!tree.has(gone), `${gone} was deleted by a whiteout`);
    }
    assert.deepEqual(childrenOf(tree, '/feat/del'), ['/feat/del/keep']);
    assert.deepEqual(childrenOf(tree, '/feat/opq'), ['/feat/opq/new1', '/feat/opq/newdir', '/feat/opq/newdir/new2']);
    assert.deepEqual(childrenOf(tree, '/feat/dir-readded'), ['/feat/dir-readded/new-b']);
    // Whiteouts and the opaque marker are made in these dirs, yet their image mtime stays.
    assert.equal(entry(tree, '/feat/del').mtime, DEFAULT_MTIME);
    assert.deepEqual(entry(tree, '/feat/opq').xattrs, [], 'trusted.overlay.opaque stays inside overlay');

    assert.deepEqual(entry(tree, '/feat/cap-busybox').xattrs, [CAPABILITY]);
    // Docker's tar writer reads only security.capability: user.* is in the container, not the export.
    assert.deepEqual(entry(tree, '/feat/xattrs').xattrs, []);
    assert.partialDeepStrictEqual(entry(tree, '/feat/dev/big-numbers'), { type: 'char', devmajor: 300, devminor: 70000, mode: 0o600 });
    assert.partialDeepStrictEqual(entry(tree, '/feat/dev/block'), { type: 'block', devmajor: 7, devminor: 0, gid: 6 });
    assert.partialDeepStrictEqual(entry(tree, '/feat/dev/fifo'), { type: 'fifo', uid: 1000, mode: 0o620 });
    assert.deepEqual(entry(tree, '/feat/hardlink-elsewhere').hardlinks, ['/feat/hard/original', '/feat/hard/second', '/feat/hardlink-elsewhere']);
    assert.partialDeepStrictEqual(entry(tree, '/feat/setuid'), { mode: 0o4755 });
    assert.partialDeepStrictEqual(entry(tree, '/feat/links/owned'), { type: 'symlink', linkTarget: 'relative', uid: 1000, mtime: 1400000000 });
    assert.partialDeepStrictEqual(entry(tree, '/feat/empty'), { uid: 2, gid: 3, mode: 0o750, mtime: 1300000000 });
    assert.partialDeepStrictEqual(entry(tree, '/feat/modify/meta-changes'), { uid: 1001, gid: 1001, mode: 0o755, size: 5 });
    assert.partialDeepStrictEqual(entry(tree, '/feat/kind/file-becomes-dir'), { type: 'directory' });
    assert.ok(tree.has('/feat/kind/file-becomes-dir/inside'));
    assert.ok(!tree.has('/feat/kind/dir-becomes-file/child'));
    assert.ok(tree.has('/feat/name with spaces ünïcødé ✓.txt'));
    assert.equal(entry(tree, '/feat/long/long-target').linkTarget, `${'x/'.repeat(80)}y`);
    const longest = [...tree.keys()].filter((path) => path.startsWith('/feat/long/')).sort((a, b) => b.length - a.length)[0];
    assert.ok(longest.length > 400 && entry(tree, longest).hardlinks?.includes('/feat/long/hardlink-to-long'));

    // What docker's init layer adds, with the creation time left out of the record.
    for (const path of ['/.dockerenv', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/console']) {
      assert.partialDeepStrictEqual(entry(tree, path), { type: 'file', size: 0, mtime: undefined });
    }
    assert.partialDeepStrictEqual(entry(tree, '/etc/mtab'), { type: 'symlink', linkTarget: '/proc/mounts' });
  });

  await t.test('two containers of one image export identical trees (no creation times leak)', async () => {
    const first = await exportTree(dockerd, feature.tag);
    // Let the clock move on a whole second, the resolution of tar mtimes.
    await sleep(1100);
    const second = await exportTree(dockerd, feature.tag);
    assert.deepEqual(diffTrees(first, second, ['first', 'second']), []);
  });

  await t.test('a running container keeps user.* xattrs that the export drops', async () => {
    const container = (await dockerd.docker(['run', '--detach', '--network', 'none', feature.tag, 'sleep', '600'])).stdout.trim();
    const tarPath = join(dockerd.dir, 'running-root.tar');
    try {
      const pid = Number((await dockerd.docker(['inspect', '--format', '{{.State.Pid}}', container])).stdout);
      await tarOfRunningRoot(pid, ['feat'], tarPath);
      const running = await treeOfExport(tarPath);
      assert.deepEqual(entry(running, '/feat/xattrs').xattrs, ['user.binary=fffe0010', 'user.comment=68656c6c6f']);
      assert.deepEqual(entry(running, '/feat/cap-busybox').xattrs, [CAPABILITY]);
      const exported = subtree(await exportTree(dockerd, feature.tag), '/feat');
      assert.deepEqual(diffTrees(exported, running, ['export', 'running']), [
        '/feat/xattr-dir: xattrs export=[] running=[user.dir=64]',
        '/feat/xattrs: xattrs export=[] running=[user.binary=fffe0010, user.comment=68656c6c6f]',
      ]);
    } finally {
      await rm(tarPath, { force: true });
      await dockerd.docker(['rm', '--force', container]);
    }
  });

  await t.test('125 layers load and stack in order', async () => {
    const deep = await deepImage(125);
    await dockerd.docker(['load', '--input', deep.path]);
    const { stdout } = await dockerd.docker([...RUN, deep.tag, 'sh', '-c', 'cat /deep/counter; ls /deep | wc -l; test -e /deep/layer-5 || echo gone']);
    // 124 files, 12 of them whited out again (layer-5 … layer-115), plus the counter.
    assert.equal(stdout, '124\n113\ngone\n');
  });

  await t.test('bigImage loads with its content intact', async () => {
    const big = await bigImage(6);
    await dockerd.docker(['load', '--input', big.path]);
    const { stdout } = await dockerd.docker([...RUN, big.tag, 'sh', '-c', 'stat -c %s /big/*']);
    assert.equal(stdout, `${4 * 1024 * 1024}\n${2 * 1024 * 1024}\n`);
  });

  await t.test('images and layers survive a daemon restart', async () => {
    await dockerd.restart();
    const { stdout } = await dockerd.docker([...RUN, feature.tag, 'cat', '/feat/del/keep']);
    assert.equal(stdout, 'kept\n');
  });
});

test('a daemon that cannot start fails fast with its log tail and leaves nothing behind', async (t) => {
  const outcome = await startDockerd({ storageDriver: 'overlay2', storageOpts: ['overlay2.bogus=1'] }).then(
    (dockerd) => stopAfter(t, dockerd),
    (error: unknown) => error,
  );
  assert.ok(outcome instanceof Error, 'dockerd must refuse an unknown overlay2 option');
  assert.match(outcome.message, /error initializing graphdriver: overlay2: unknown option overlay2\.bogus/);
  const dir = /dockerd in (\/tmp\/gd-\w+)/.exec(outcome.message)?.[1];
  assert.ok(dir, 'the error names the daemon dir');
  // dockerd bind-mounts its data-root on itself and leaves that behind when start-up fails.
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), `${dir} is unmounted`);
  assert.ok(!existsSync(dir), `${dir} is removed`);
});
