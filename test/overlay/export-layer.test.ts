// exportLayer against Docker's overlay2 Diff (pkg/archive TarWithOptions with the overlay whiteout
// converter): overlay whiteouts and opaque directories go back to the AUFS form, hardlinks are
// hardlink entries, the walk is filepath.Walk's byte-ordered pre-order, and applying the result
// gives the same tree again.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { applyLayer } from '../../src/core/overlay/apply-layer.ts';
import { exportLayer } from '../../src/core/overlay/export-layer.ts';
import { chunks, describeTree, NET_BIND_CAPABILITY, readArchive, run, tempDir, type ArchiveEntry } from './fixtures.ts';

async function exportToBuffer(root: string): Promise<Buffer> {
  const out = new PassThrough();
  const pieces: Buffer[] = [];
  out.on('data', (piece: Buffer) => pieces.push(piece));
  await exportLayer(root, out);
  return Buffer.concat(pieces);
}

async function setTime(target: string, seconds: number): Promise<void> {
  await fs.lutimes(target, seconds, seconds);
}

async function makeSocket(target: string): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(target, resolve));
  // Closing the server leaves the socket file behind, which is what a layer can hold.
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!(await fs.lstat(target).then((s) => s.isSocket(), () => false))) {
    await run('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(target)})`]);
  }
}

/**
 * An upper directory as a container leaves it: kernel-style whiteouts (c 0 0, mode 0), an opaque
 * directory, hardlinks, devices, xattrs including overlay's own, and a socket.
 */
async function makeUpper(t: TestContext): Promise<string> {
  const base = await tempDir(t, 'export-layer-');
  const upper = path.join(base, 'upper');
  await fs.mkdir(upper);
  const w = async (rel: string, content: string, mode = 0o644, uid = 0, gid = 0): Promise<void> => {
    await fs.mkdir(path.dirname(path.join(upper, rel)), { recursive: true });
    await fs.writeFile(path.join(upper, rel), content);
    await fs.chown(path.join(upper, rel), uid, gid);
    await fs.chmod(path.join(upper, rel), mode);
  };
  await w('a/x', 'ax');
  await w('a-b', 'dash');
  await w('a.b', 'dot');
  await w('B', 'upper case');
  await w('\u00e9t\u00e9', 'utf-8');
  await w('h1', 'linked', 0o4755, 1000, 1000);
  await fs.link(path.join(upper, 'h1'), path.join(upper, 'z-h2'));
  await fs.link(path.join(upper, 'h1'), path.join(upper, 'a/h3'));
  await fs.symlink('h1', path.join(upper, 's1'));
  await fs.link(path.join(upper, 's1'), path.join(upper, 's2'));
  await w('bin/ping', 'ping', 0o755);
  await run('setfattr', ['-n', 'security.capability', '-v', `0x${NET_BIND_CAPABILITY.toString('hex')}`, path.join(upper, 'bin/ping')]);
  await run('setfattr', ['-n', 'user.note', '-v', '0x00010203', path.join(upper, 'bin/ping')]);
  // Overlay's own bookkeeping, which means nothing in another mount.
  await run('setfattr', ['-n', 'trusted.overlay.origin', '-v', '0x00fb', path.join(upper, 'bin/ping')]);
  await fs.mkdir(path.join(upper, 'bin/sub'));
  await run('setfattr', ['-n', 'trusted.overlay.impure', '-v', 'y', path.join(upper, 'bin')]);
  await run('mknod', ['-m', '000', path.join(upper, 'bin/ls'), 'c', '0', '0']);
  await fs.lchown(path.join(upper, 'bin/ls'), 1000, 1001);
  await fs.mkdir(path.join(upper, 'opt'), { mode: 0o755 });
  await fs.chmod(path.join(upper, 'opt'), 0o2775);
  await fs.chown(path.join(upper, 'opt'), 1000, 50);
  await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(upper, 'opt')]);
  await w('opt/z', 'y\n');
  await fs.mkdir(path.join(upper, 'dev'));
  await run('mknod', ['-m', '666', path.join(upper, 'dev/null'), 'c', '1', '3']);
  await run('mknod', ['-m', '660', path.join(upper, 'dev/sda'), 'b', '8', '0']);
  await run('mknod', ['-m', '600', path.join(upper, 'dev/initctl'), 'p']);
  await makeSocket(path.join(upper, 'dev/log'));
  // Times last and deepest first, as creating entries moves a directory's mtime.
  let time = 1_600_000_000;
  const all = (await run('find', [upper, '-mindepth', '1', '-depth'])).stdout.toString().split('\n').filter(Boolean);
  for (const p of all) await setTime(p, time++);
  return upper;
}

function byName(entries: ArchiveEntry[]): Map<string, ArchiveEntry> {
  return new Map(entries.map((e) => [e.path, e]));
}

test('exportLayer writes Docker\'s entries for an overlay upper directory', async (t) => {
  const upper = await makeUpper(t);
  const entries = await readArchive(await exportToBuffer(upper));
  const named = byName(entries);

  // filepath.Walk: names sorted bytewise within each directory, a directory's contents right
  // after it, so a/ and its children come before a-b and a.b.
  assert.deepEqual(entries.map((e) => e.path), [
    'B',
    'a/',
    'a/h3',
    'a/x',
    'a-b',
    'a.b',
    'bin/',
    'bin/.wh.ls',
    'bin/ping',
    'bin/sub/',
    'dev/',
    'dev/initctl',
    'dev/null',
    'dev/sda',
    'h1',
    'opt/',
    'opt/.wh..wh..opq',
    'opt/z',
    's1',
    's2',
    'z-h2',
    '\u00e9t\u00e9',
  ]);

  // Whiteout: an empty 0600 regular file with the device's owner and time.
  const whiteout = named.get('bin/.wh.ls')!;
  assert.equal(whiteout.type, 'file');
  assert.equal(whiteout.mode, 0o600);
  assert.equal(whiteout.size, 0);
  assert.equal(whiteout.uid, 1000);
  assert.equal(whiteout.gid, 1001);
  assert.equal(whiteout.mtime, Math.floor((await fs.lstat(path.join(upper, 'bin/ls'))).mtimeMs / 1000));

  // Opaque directory: the directory without the xattr, then the marker. Docker builds the
  // marker's header from the directory's permission bits and owner and gives it no time.
  const opt = named.get('opt/')!;
  assert.equal(opt.type, 'directory');
  assert.equal(opt.mode, 0o2775);
  assert.equal(opt.xattrs.size, 0, 'trusted.overlay.opaque does not travel');
  const marker = named.get('opt/.wh..wh..opq')!;
  assert.equal(marker.type, 'file');
  assert.equal(marker.mode, 0o775);
  assert.equal(marker.uid, 1000);
  assert.equal(marker.gid, 50);
  assert.equal(marker.size, 0);
  assert.equal(marker.mtime, 0);

  // Hardlinks: the first name in walk order carries the data, the others point at it.
  assert.equal(named.get('a/h3')!.type, 'file');
  assert.equal(named.get('a/h3')!.data.toString(), 'linked');
  assert.equal(named.get('a/h3')!.mode, 0o4755);
  for (const name of ['h1', 'z-h2']) {
    const link = named.get(name)!;
    assert.equal(link.type, 'hardlink', name);
    assert.equal(link.linkname, 'a/h3', name);
    assert.equal(link.size, 0);
  }
  assert.equal(named.get('s1')!.type, 'symlink');
  assert.equal(named.get('s1')!.linkname, 'h1');
  assert.equal(named.get('s2')!.type, 'hardlink', 'a hardlinked symlink is a hardlink entry, as Docker writes it');
  assert.equal(named.get('s2')!.linkname, 's1');

  // Devices and fifos.
  assert.deepEqual([named.get('dev/null')!.type, named.get('dev/null')!.devmajor, named.get('dev/null')!.devminor, named.get('dev/null')!.mode], ['char', 1, 3, 0o666]);
  assert.deepEqual([named.get('dev/sda')!.type, named.get('dev/sda')!.devmajor, named.get('dev/sda')!.devminor], ['block', 8, 0]);
  assert.equal(named.get('dev/initctl')!.type, 'fifo');
  assert.equal(named.has('dev/log'), false, 'sockets are skipped, as tar.FileInfoHeader refuses them');

  // xattrs travel, except overlay's own.
  const ping = named.get('bin/ping')!;
  assert.ok(ping.xattrs.get('security.capability')?.equals(NET_BIND_CAPABILITY));
  assert.ok(ping.xattrs.get('user.note')?.equals(Buffer.from([0, 1, 2, 3])));
  assert.equal(ping.xattrs.has('trusted.overlay.origin'), false);
  assert.equal(named.get('bin/')!.xattrs.size, 0, 'trusted.overlay.impure does not travel');

  // Regular files carry their content, owners, modes and whole-second times.
  assert.equal(named.get('\u00e9t\u00e9')!.data.toString(), 'utf-8');
  assert.equal(named.get('a/x')!.mtime, Math.floor((await fs.lstat(path.join(upper, 'a/x'))).mtimeMs / 1000));
  assert.equal(named.get('a/')!.mtime, Math.floor((await fs.lstat(path.join(upper, 'a'))).mtimeMs / 1000));
});

test('applyLayer(exportLayer(x)) reproduces x, and exporting again gives the same bytes', async (t) => {
  const upper = await makeUpper(t);
  const first = await exportToBuffer(upper);
  const copy = path.join(path.dirname(upper), 'copy');
  await fs.mkdir(copy);
  await applyLayer(chunks(first, 1000), copy);

  const travelling = (name: string): boolean => !name.startsWith('trusted.overlay.') || name === 'trusted.overlay.opaque';
  const expected = await describeTree(upper, { xattrFilter: travelling });
  expected.delete('dev/log');
  assert.deepEqual(await describeTree(copy, { xattrFilter: travelling }), expected);
  assert.ok((await exportToBuffer(copy)).equals(first), 'a second export differs from the first');
});

test('an empty layer exports as an empty archive', async (t) => {
  const dir = await tempDir(t, 'export-empty-');
  const archive = await exportToBuffer(dir);
  assert.deepEqual(await readArchive(archive), []);
  assert.equal(archive.length % 512, 0);
  assert.ok(archive.length >= 1024);
});
