// applyLayer against what Docker's overlay2 ApplyDiff leaves on disk (pkg/archive Unpack with the
// overlay whiteout converter): attributes, every entry type, whiteouts, and the confinement of
// every name and link to the layer directory.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { TarHeader } from '../../src/core/tar/entry.ts';
import { applyLayer } from '../../src/core/overlay/apply-layer.ts';
import { LayerEscapeError } from '../../src/core/fs/confined-path.ts';
import { deviceNumbers } from '../../src/core/fs/walk.ts';
import {
  chunks,
  describeTree,
  dir,
  entry,
  exists,
  file,
  hardlink,
  makeTar,
  NET_BIND_CAPABILITY,
  run,
  symlink,
  tempDir,
  xattrsOf,
} from './fixtures.ts';

type Entries = ReadonlyArray<readonly [TarHeader, Buffer?]>;

/** A fresh, empty layer root nested two levels deep, so `..` has somewhere to go. */
async function layerRoot(t: import('node:test').TestContext): Promise<{ base: string; root: string }> {
  const base = await tempDir(t, 'apply-layer-');
  const root = path.join(base, 'layers', 'root');
  await fs.mkdir(root, { recursive: true, mode: 0o755 });
  return { base, root };
}

async function apply(root: string, entries: Entries): Promise<void> {
  await applyLayer(chunks(await makeTar(entries)), root);
}

async function sha256(target: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(target)).digest('hex');
}

test('regular files keep content, owners, special mode bits and mtime', async (t) => {
  const { root } = await layerRoot(t);
  const big = randomBytes(300_000);
  await apply(root, [
    file('plain', 'hello\n', { mode: 0o644, uid: 0, gid: 0, mtime: 1_234_567_890 }),
    file('owned', 'x', { mode: 0o640, uid: 1000, gid: 1001, mtime: 1_300_000_000 }),
    // chown clears setuid and setgid, so these only survive if chmod comes after chown.
    file('suid', 'su', { mode: 0o4755, uid: 1000, gid: 1000 }),
    file('sgid', 'sg', { mode: 0o2711, uid: 1002, gid: 50 }),
    file('both', 'b', { mode: 0o6755, uid: 1000, gid: 1000 }),
    file('big', big, { mode: 0o600 }),
    file('empty', '', { mode: 0o444 }),
    dir('sticky', { mode: 0o1777, uid: 0, gid: 0 }),
  ]);

  const expect = async (name: string, mode: number, uid: number, gid: number, mtime?: number): Promise<void> => {
    const stat = await fs.lstat(path.join(root, name));
    assert.equal((stat.mode & 0o7777).toString(8), mode.toString(8), `${name} mode`);
    assert.equal(stat.uid, uid, `${name} uid`);
    assert.equal(stat.gid, gid, `${name} gid`);
    if (mtime !== undefined) assert.equal(stat.mtimeMs, mtime * 1000, `${name} mtime`);
  };
  await expect('plain', 0o644, 0, 0, 1_234_567_890);
  await expect('owned', 0o640, 1000, 1001, 1_300_000_000);
  await expect('suid', 0o4755, 1000, 1000, 1_500_000_000);
  await expect('sgid', 0o2711, 1002, 50);
  await expect('both', 0o6755, 1000, 1000);
  await expect('empty', 0o444, 0, 0);
  await expect('sticky', 0o1777, 0, 0);
  assert.equal(await fs.readFile(path.join(root, 'plain'), 'utf8'), 'hello\n');
  assert.ok((await fs.readFile(path.join(root, 'big'))).equals(big));
  assert.equal((await fs.readFile(path.join(root, 'empty'))).length, 0);
});

test('a pax fractional mtime is kept to the sub-second', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [file('frac', 'f', { mtime: 1_600_000_000.25 })]);
  assert.equal((await fs.lstat(path.join(root, 'frac'))).mtimeMs, 1_600_000_000_250);
});

test('directories get their own attributes, and their mtime survives the children and whiteouts made in them', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    dir('d', { mode: 0o2775, uid: 1000, gid: 1000, mtime: 1_000_000_000 }),
    file('d/child', 'c', { mtime: 1_100_000_000 }),
    dir('d/sub', { mode: 0o700, mtime: 1_000_000_100 }),
    file('d/sub/deep', 'deep'),
    entry({ path: 'd/.wh.gone', mtime: 1_700_000_000 }),
    entry({ path: 'd/sub/.wh..wh..opq' }),
    entry({ path: 'd/fifo', type: 'fifo', mode: 0o644 }),
    // A file whose parent the archive never lists: the parent is made 0755, owned by root.
    file('implied/parent/f', 'f'),
  ]);
  const d = await fs.lstat(path.join(root, 'd'));
  assert.equal(d.mtimeMs, 1_000_000_000_000);
  assert.equal((d.mode & 0o7777).toString(8), '2775');
  assert.equal(d.uid, 1000);
  const sub = await fs.lstat(path.join(root, 'd/sub'));
  assert.equal(sub.mtimeMs, 1_000_000_100_000);
  assert.equal((sub.mode & 0o7777).toString(8), '700');
  for (const implied of ['implied', 'implied/parent']) {
    const stat = await fs.lstat(path.join(root, implied));
    assert.ok(stat.isDirectory());
    assert.equal((stat.mode & 0o7777).toString(8), '755', implied);
    assert.equal(stat.uid, 0);
  }
});

test('symlinks: relative, absolute and dangling, with their own owner and mtime', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    dir('bin'),
    file('bin/busybox', '#!', { mode: 0o755 }),
    symlink('bin/sh', 'busybox', { uid: 1000, gid: 1001, mtime: 1_200_000_000 }),
    symlink('bin/ls', '/bin/busybox'),
    symlink('etc-passwd', '/etc/passwd'),
    symlink('dangling', 'does/not/exist'),
    symlink('up', 'bin/../bin/sh'),
  ]);
  assert.equal(await fs.readlink(path.join(root, 'bin/sh')), 'busybox');
  assert.equal(await fs.readlink(path.join(root, 'bin/ls')), '/bin/busybox');
  assert.equal(await fs.readlink(path.join(root, 'etc-passwd')), '/etc/passwd');
  assert.equal(await fs.readlink(path.join(root, 'dangling')), 'does/not/exist');
  assert.equal(await fs.readlink(path.join(root, 'up')), 'bin/../bin/sh');
  const sh = await fs.lstat(path.join(root, 'bin/sh'));
  assert.ok(sh.isSymbolicLink());
  assert.equal(sh.uid, 1000, 'lchown, not chown of the target');
  assert.equal(sh.gid, 1001);
  assert.equal(sh.mtimeMs, 1_200_000_000_000);
  const target = await fs.lstat(path.join(root, 'bin/busybox'));
  assert.equal(target.uid, 0, 'the link target keeps its owner');
  assert.equal(target.mtimeMs, 1_500_000_000_000);
});

test('hardlinks share the inode, also to fifos, devices and symlinks', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    dir('a'),
    file('a/orig', 'content', { mode: 0o4750, uid: 1000, gid: 1000 }),
    hardlink('b/link', 'a/orig', { mode: 0o4750, uid: 1000, gid: 1000 }),
    hardlink('./a/link2', './a/orig', { mode: 0o4750, uid: 1000, gid: 1000 }),
    entry({ path: 'fifo', type: 'fifo', mode: 0o640 }),
    hardlink('fifo-link', 'fifo', { mode: 0o640 }),
    entry({ path: 'null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 }),
    hardlink('null-link', 'null', { mode: 0o666 }),
    symlink('sym', 'a/orig'),
    hardlink('sym-link', 'sym'),
  ]);
  const orig = await fs.lstat(path.join(root, 'a/orig'));
  assert.equal(orig.nlink, 3);
  assert.equal((orig.mode & 0o7777).toString(8), '4750', 'the link entry\'s chown must not drop setuid');
  for (const name of ['b/link', 'a/link2']) assert.equal((await fs.lstat(path.join(root, name))).ino, orig.ino, name);
  assert.equal(await fs.readFile(path.join(root, 'b/link'), 'utf8'), 'content');
  const fifo = await fs.lstat(path.join(root, 'fifo'));
  assert.ok(fifo.isFIFO());
  assert.equal((await fs.lstat(path.join(root, 'fifo-link'))).ino, fifo.ino);
  const dev = await fs.lstat(path.join(root, 'null'));
  assert.equal((await fs.lstat(path.join(root, 'null-link'))).ino, dev.ino);
  const sym = await fs.lstat(path.join(root, 'sym'));
  const symLink = await fs.lstat(path.join(root, 'sym-link'));
  assert.ok(symLink.isSymbolicLink(), 'a hardlink to a symlink is the symlink, not its target');
  assert.equal(symLink.ino, sym.ino);
});

test('char and block devices and fifos keep type, numbers, mode and owner', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    dir('dev'),
    entry({ path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3, mtime: 1_100_000_000 }),
    entry({ path: 'dev/tty9', type: 'char', mode: 0o620, uid: 0, gid: 5, devmajor: 4, devminor: 9 }),
    entry({ path: 'dev/big', type: 'char', mode: 0o600, devmajor: 300, devminor: 70_000 }),
    entry({ path: 'dev/loop0', type: 'block', mode: 0o660, gid: 6, devmajor: 7, devminor: 0 }),
    entry({ path: 'dev/fifo', type: 'fifo', mode: 0o600, uid: 1000, gid: 1000, mtime: 1_200_000_000 }),
  ]);
  const check = async (name: string, kind: 'char' | 'block' | 'fifo', mode: number, uid: number, gid: number, major = 0, minor = 0): Promise<void> => {
    const stat = await fs.lstat(path.join(root, name));
    const isKind = kind === 'char' ? stat.isCharacterDevice() : kind === 'block' ? stat.isBlockDevice() : stat.isFIFO();
    assert.ok(isKind, `${name} is a ${kind}`);
    assert.equal((stat.mode & 0o7777).toString(8), mode.toString(8), `${name} mode`);
    assert.equal(stat.uid, uid, `${name} uid`);
    assert.equal(stat.gid, gid, `${name} gid`);
    if (kind !== 'fifo') assert.deepEqual(deviceNumbers(stat.rdev), { major, minor }, `${name} numbers`);
  };
  await check('dev/null', 'char', 0o666, 0, 0, 1, 3);
  await check('dev/tty9', 'char', 0o620, 0, 5, 4, 9);
  await check('dev/big', 'char', 0o600, 0, 0, 300, 70_000);
  await check('dev/loop0', 'block', 0o660, 0, 6, 7, 0);
  await check('dev/fifo', 'fifo', 0o600, 1000, 1000);
  assert.equal((await fs.lstat(path.join(root, 'dev/null'))).mtimeMs, 1_100_000_000_000);
  assert.equal((await fs.lstat(path.join(root, 'dev/fifo'))).mtimeMs, 1_200_000_000_000);
});

test('xattrs: binary security.capability survives the chown, user.* values are byte-exact', async (t) => {
  const { root } = await layerRoot(t);
  const binary = Buffer.from([0x00, 0x01, 0x0a, 0xff, 0x3d, 0x00]);
  await apply(root, [
    // chown(2) drops security.capability, so it must be set after the owner.
    file('ping', 'elf', {
      mode: 0o755,
      uid: 1000,
      gid: 1000,
      xattrs: new Map([['security.capability', NET_BIND_CAPABILITY], ['user.bin', binary]]),
    }),
    hardlink('ping-link', 'ping', { mode: 0o755, uid: 1000, gid: 1000 }),
    file('empty-value', 'e', { xattrs: new Map([['user.empty', Buffer.alloc(0)]]) }),
    dir('withattr', { xattrs: new Map([['user.dir', Buffer.from('on a dir')]]) }),
    file('name with\nnewline', 'n', { xattrs: new Map([['user.odd', Buffer.from('v')]]) }),
  ]);
  const ping = await xattrsOf(path.join(root, 'ping'));
  assert.ok(ping.get('security.capability')?.equals(NET_BIND_CAPABILITY), `security.capability is ${ping.get('security.capability')?.toString('hex')}`);
  assert.ok(ping.get('user.bin')?.equals(binary));
  const getcap = await run('getcap', [path.join(root, 'ping')]).catch(() => undefined);
  if (getcap) assert.match(getcap.stdout.toString(), /cap_net_bind_service[=+]ep/);
  assert.deepEqual([...(await xattrsOf(path.join(root, 'empty-value')))], [['user.empty', Buffer.alloc(0)]]);
  assert.equal((await xattrsOf(path.join(root, 'withattr'))).get('user.dir')?.toString(), 'on a dir');
  assert.equal((await xattrsOf(path.join(root, 'name with\nnewline'))).get('user.odd')?.toString(), 'v');
});

test('.wh.<name> becomes a 0/0 character device with the entry\'s owner; no .wh. file is left', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    dir('bin'),
    entry({ path: 'bin/.wh.ls', uid: 1000, gid: 1001, mode: 0o600 }),
    entry({ path: '.wh.top', mode: 0o600 }),
    entry({ path: 'implied/.wh.x' }),
  ]);
  for (const [name, uid, gid] of [['bin/ls', 1000, 1001], ['top', 0, 0], ['implied/x', 0, 0]] as const) {
    const stat = await fs.lstat(path.join(root, name));
    assert.ok(stat.isCharacterDevice(), `${name} is a whiteout`);
    assert.deepEqual(deviceNumbers(stat.rdev), { major: 0, minor: 0 });
    assert.equal(stat.uid, uid, `${name} uid`);
    assert.equal(stat.gid, gid, `${name} gid`);
    assert.equal(stat.mode & 0o7777, 0);
  }
  assert.deepEqual((await fs.readdir(root)).sort(), ['bin', 'implied', 'top']);
  assert.deepEqual(await fs.readdir(path.join(root, 'bin')), ['ls']);
});

test('.wh..wh..opq marks its directory opaque with trusted.overlay.opaque=y and is not written', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    dir('opt', { mtime: 1_000_000_000 }),
    entry({ path: 'opt/.wh..wh..opq', mode: 0o755 }),
    file('opt/z', 'y\n'),
    entry({ path: 'var/lib/.wh..wh..opq' }),
  ]);
  assert.equal((await xattrsOf(path.join(root, 'opt'))).get('trusted.overlay.opaque')?.toString(), 'y');
  assert.equal((await xattrsOf(path.join(root, 'var/lib'))).get('trusted.overlay.opaque')?.toString(), 'y');
  assert.deepEqual(await fs.readdir(path.join(root, 'opt')), ['z']);
  assert.deepEqual(await fs.readdir(path.join(root, 'var/lib')), []);
  assert.equal((await fs.lstat(path.join(root, 'opt'))).mtimeMs, 1_000_000_000_000);
});

test('the archive\'s ./ root entry does not change the layer root', async (t) => {
  const { root } = await layerRoot(t);
  await fs.chmod(root, 0o755);
  const before = await fs.lstat(root);
  await apply(root, [
    dir('./', { mode: 0o700, uid: 1234, gid: 1234, mtime: 1_000 }),
    file('./etc/hostname', 'h\n'),
  ]);
  const after = await fs.lstat(root);
  assert.equal((after.mode & 0o7777).toString(8), '755');
  assert.equal(after.uid, before.uid);
  assert.equal(after.gid, before.gid);
  assert.notEqual(after.mtimeMs, 1_000_000);
  assert.equal(await fs.readFile(path.join(root, 'etc/hostname'), 'utf8'), 'h\n');
});

test('names that climb out of the layer are rejected with a clear error and nothing is written', async (t) => {
  for (const name of ['../x', 'a/../../x', './../x', 'a/b/../../../x']) {
    const { base, root } = await layerRoot(t);
    await assert.rejects(
      apply(root, [file('before', 'b'), file(name, 'escaped')]),
      (err: Error) => err instanceof LayerEscapeError && err.message.includes(JSON.stringify(name)) && /outside the layer/.test(err.message),
      name,
    );
    assert.equal(await exists(path.join(base, 'layers', 'x')), false, `${name} wrote outside`);
    assert.equal(await exists(path.join(base, 'x')), false, `${name} wrote outside`);
  }
});

test('absolute names land under the layer root', async (t) => {
  const { root } = await layerRoot(t);
  const unique = `cvmfs-graphdriver-test-${randomBytes(6).toString('hex')}`;
  t.after(() => fs.rm(path.join('/tmp', unique), { force: true }));
  await apply(root, [file(`/tmp/${unique}`, 'confined'), dir('/abs/dir/'), file('//double//slash', 'd')]);
  assert.equal(await fs.readFile(path.join(root, 'tmp', unique), 'utf8'), 'confined');
  assert.equal(await exists(path.join('/tmp', unique)), false);
  assert.ok((await fs.lstat(path.join(root, 'abs/dir'))).isDirectory());
  assert.equal(await fs.readFile(path.join(root, 'double/slash'), 'utf8'), 'd');
});

test('a symlink in a parent is followed inside the layer, never outside it', async (t) => {
  const { base, root } = await layerRoot(t);
  const outside = path.join(base, 'outside');
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, 'passwd'), 'host\n');
  const unique = `cvmfs-graphdriver-test-${randomBytes(6).toString('hex')}`;
  t.after(() => fs.rm(path.join('/etc', unique), { force: true }));
  const hostPasswd = await sha256('/etc/passwd');

  await apply(root, [
    symlink('etclink', '/etc'),
    file(`etclink/${unique}`, 'layer\n'),
    symlink('link', outside),
    file('link/passwd', 'layer\n'),
    dir('d'),
    symlink('d/up', '..'),
    file('d/up/via-up', 'u'),
    symlink('chain1', 'chain2'),
    symlink('chain2', '/chain3'),
    file('chain1/end', 'e'),
  ]);
  assert.equal(await fs.readFile(path.join(root, 'etc', unique), 'utf8'), 'layer\n');
  assert.equal(await exists(path.join('/etc', unique)), false);
  assert.equal(await sha256('/etc/passwd'), hostPasswd);
  assert.equal(await fs.readFile(path.join(root, outside, 'passwd'), 'utf8'), 'layer\n');
  assert.equal(await fs.readFile(path.join(outside, 'passwd'), 'utf8'), 'host\n');
  assert.equal(await fs.readFile(path.join(root, 'via-up'), 'utf8'), 'u');
  assert.equal(await fs.readFile(path.join(root, 'chain3/end'), 'utf8'), 'e');
  assert.equal(await exists('/chain3'), false);
});

test('a symlink climbing out of the root is clamped at the root when followed as a parent', async (t) => {
  const { base, root } = await layerRoot(t);
  // The archive itself may not make such a link (see below); a layer dir could still hold one.
  await fs.symlink('../../..', path.join(root, 'link'));
  await fs.mkdir(path.join(root, 'sub'));
  await fs.symlink('../../../../..', path.join(root, 'sub', 'deep'));
  await apply(root, [file('link/escaped', 'x'), file('sub/deep/etc/escaped2', 'y')]);
  assert.equal(await fs.readFile(path.join(root, 'escaped'), 'utf8'), 'x');
  assert.equal(await fs.readFile(path.join(root, 'etc/escaped2'), 'utf8'), 'y');
  assert.equal(await exists(path.join(base, 'escaped')), false);
  assert.equal(await exists(path.join(base, 'layers', 'escaped')), false);
});

test('a relative symlink target that climbs out of the layer is rejected', async (t) => {
  for (const [name, target] of [['up', '../outside'], ['sub/up', '../../x'], ['sub/dots', 'a/../../../x'], ['self', '..']] as const) {
    const { root } = await layerRoot(t);
    await assert.rejects(
      apply(root, [symlink(name, target)]),
      (err: Error) => err instanceof LayerEscapeError && err.message.includes(target) && /outside the layer/.test(err.message),
      `${name} -> ${target}`,
    );
  }
  const { root } = await layerRoot(t);
  await apply(root, [symlink('sub/ok', '../x'), symlink('sub/dot', '.'), symlink('top', '.')]);
  assert.equal(await fs.readlink(path.join(root, 'sub/ok')), '../x');
});

test('a hardlink to a path outside the layer is rejected', async (t) => {
  const { base, root } = await layerRoot(t);
  const hostLinks = (await fs.lstat('/etc/passwd')).nlink;
  await assert.rejects(apply(root, [hardlink('evil', '../../etc/passwd')]), (err: Error) => err instanceof LayerEscapeError && err.message.includes('../../etc/passwd'));
  await assert.rejects(apply(root, [hardlink('evil', 'a/../../../etc/passwd')]), LayerEscapeError);
  // Through a symlink in the target's parent: resolved inside the layer, where there is no passwd.
  await assert.rejects(apply(root, [symlink('sys', '/etc'), hardlink('evil', 'sys/passwd')]), /hardlink evil/);
  await fs.writeFile(path.join(base, 'outside'), 'host');
  await assert.rejects(apply(root, [symlink('out', path.join(base)), hardlink('evil2', 'out/outside')]), /hardlink evil2/);
  assert.equal((await fs.lstat('/etc/passwd')).nlink, hostLinks);
  assert.equal((await fs.lstat(path.join(base, 'outside'))).nlink, 1);
  assert.equal(await exists(path.join(root, 'evil')), false);
});

test('work left for the end of the archive never follows a symlink that later replaced its directory', async (t) => {
  const { base, root } = await layerRoot(t);
  const outside = path.join(base, 'outside');
  await fs.mkdir(path.join(outside, 'sub'), { recursive: true });
  await fs.writeFile(path.join(outside, 'f'), 'host');
  await fs.utimes(path.join(outside, 'sub'), 1_000_000, 1_000_000);
  await apply(root, [
    dir('a'),
    entry({ path: 'a/fifo', type: 'fifo' }),
    entry({ path: 'a/null', type: 'char', devmajor: 1, devminor: 3 }),
    entry({ path: 'a/.wh.gone' }),
    entry({ path: 'a/.wh..wh..opq' }),
    file('a/f', 'layer', { xattrs: new Map([['user.planted', Buffer.from('x')]]) }),
    dir('a/sub', { mtime: 2_000_000 }),
    // `a` is replaced by a link to a host directory: what the archive said about a/... is gone.
    symlink('a', outside),
  ]);
  assert.deepEqual((await fs.readdir(outside)).sort(), ['f', 'sub']);
  assert.equal((await xattrsOf(path.join(outside, 'f'))).size, 0);
  assert.equal((await xattrsOf(outside)).size, 0);
  assert.equal((await fs.lstat(path.join(outside, 'sub'))).mtimeMs, 1_000_000_000);
  assert.equal(await fs.readlink(path.join(root, 'a')), outside);
  assert.deepEqual(await fs.readdir(root), ['a']);
});

test('an entry replaces an existing path of another type, as Docker\'s RemoveAll-then-create does', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    file('x', 'file first'),
    dir('x'),
    file('x/child', 'c'),
    dir('y'),
    file('y/child', 'c'),
    file('y', 'file now'),
    file('s', 'file'),
    symlink('s', 'elsewhere'),
    dir('target'),
    file('target/keep', 'k'),
    symlink('ln', 'target'),
    file('ln', 'not through the link'),
    entry({ path: 'p', type: 'fifo' }),
    file('p', 'was a fifo'),
    entry({ path: 'dev', type: 'char', devmajor: 1, devminor: 3 }),
    dir('dev', { mode: 0o700 }),
    entry({ path: '.wh.w' }),
    file('w', 'was a whiteout'),
    file('orig', 'old'),
    hardlink('hl', 'orig'),
    file('orig', 'new'),
    dir('m', { mode: 0o755 }),
    file('m/kept', 'k'),
    dir('m', { mode: 0o750, uid: 1000 }),
    // A whiteout and a device made early (the fifo q is replaced first), then replaced themselves.
    entry({ path: '.wh.w2' }),
    entry({ path: 'dev2', type: 'char', devmajor: 1, devminor: 3 }),
    entry({ path: 'q', type: 'fifo' }),
    file('q', 'was a fifo too'),
    file('w2', 'was a whiteout too'),
    symlink('dev2', 'was-a-device'),
    // Directories the archive only implied are replaced too, also after another replacement.
    file('implied/deep/f', 'f'),
    file('r', 'r'),
    dir('r'),
    file('implied', 'a file now'),
  ]);
  assert.equal(await fs.readFile(path.join(root, 'implied'), 'utf8'), 'a file now');
  assert.equal(await fs.readFile(path.join(root, 'q'), 'utf8'), 'was a fifo too');
  assert.equal(await fs.readFile(path.join(root, 'w2'), 'utf8'), 'was a whiteout too');
  assert.equal(await fs.readlink(path.join(root, 'dev2')), 'was-a-device');
  assert.equal(await fs.readFile(path.join(root, 'x/child'), 'utf8'), 'c');
  assert.equal(await fs.readFile(path.join(root, 'y'), 'utf8'), 'file now');
  assert.equal(await fs.readlink(path.join(root, 's')), 'elsewhere');
  assert.equal(await fs.readFile(path.join(root, 'ln'), 'utf8'), 'not through the link');
  assert.ok((await fs.lstat(path.join(root, 'ln'))).isFile());
  assert.deepEqual(await fs.readdir(path.join(root, 'target')), ['keep']);
  assert.equal(await fs.readFile(path.join(root, 'p'), 'utf8'), 'was a fifo');
  assert.ok((await fs.lstat(path.join(root, 'dev'))).isDirectory());
  assert.equal(await fs.readFile(path.join(root, 'w'), 'utf8'), 'was a whiteout');
  assert.equal(await fs.readFile(path.join(root, 'hl'), 'utf8'), 'old');
  assert.equal(await fs.readFile(path.join(root, 'orig'), 'utf8'), 'new');
  const m = await fs.lstat(path.join(root, 'm'));
  assert.equal((m.mode & 0o7777).toString(8), '750');
  assert.equal(m.uid, 1000);
  assert.deepEqual(await fs.readdir(path.join(root, 'm')), ['kept']);
});

test('a GNU tar of a staged tree unpacks to the same tree', async (t) => {
  const base = await tempDir(t, 'apply-gnu-');
  const stage = path.join(base, 'stage');
  const root = path.join(base, 'root');
  await fs.mkdir(root, { mode: 0o755 });
  await fs.mkdir(stage, { mode: 0o700 });
  const mk = async (rel: string, content: string, mode: number, uid = 0, gid = 0): Promise<void> => {
    await fs.mkdir(path.dirname(path.join(stage, rel)), { recursive: true });
    await fs.writeFile(path.join(stage, rel), content);
    await fs.chown(path.join(stage, rel), uid, gid);
    await fs.chmod(path.join(stage, rel), mode);
  };
  await mk('bin/busybox', 'busybox', 0o755);
  await mk('usr/bin/passwd', 'passwd', 0o4755);
  await mk('usr/bin/ping', 'ping', 0o755);
  await mk('home/user/.profile', 'export X=1', 0o644, 1000, 1000);
  await mk('var/mail/user', 'mail', 0o2660, 1000, 8);
  await mk('long/' + 'n'.repeat(120) + '/' + 'f'.repeat(150), 'long', 0o644);
  await fs.mkdir(path.join(stage, 'tmp'));
  await fs.chmod(path.join(stage, 'tmp'), 0o1777);
  await fs.link(path.join(stage, 'bin/busybox'), path.join(stage, 'bin/sh'));
  await fs.symlink('busybox', path.join(stage, 'bin/ls'));
  await fs.symlink('/bin/busybox', path.join(stage, 'usr/bin/env'));
  await fs.symlink('nowhere', path.join(stage, 'dangling'));
  await fs.lchown(path.join(stage, 'dangling'), 1000, 1000);
  await fs.mkdir(path.join(stage, 'dev'));
  await run('mknod', ['-m', '666', path.join(stage, 'dev/null'), 'c', '1', '3']);
  await run('mknod', ['-m', '660', path.join(stage, 'dev/sda'), 'b', '8', '0']);
  await run('mknod', ['-m', '600', path.join(stage, 'dev/initctl'), 'p']);
  await run('setfattr', ['-n', 'security.capability', '-v', `0x${NET_BIND_CAPABILITY.toString('hex')}`, path.join(stage, 'usr/bin/ping')]);
  await run('setfattr', ['-n', 'user.comment', '-v', '0x00ff10', path.join(stage, 'home/user/.profile')]);
  // Times last, deepest first, so that creating entries does not move them again.
  const all = (await run('find', [stage, '-mindepth', '1', '-depth'])).stdout.toString().split('\n').filter(Boolean);
  let time = 1_400_000_000;
  for (const p of all) await run('touch', ['-h', '-d', `@${time++}`, p]);

  const archive = (await run('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', stage, '-cf', '-', '.'])).stdout;
  await applyLayer(chunks(archive, 4096), root);
  const expected = await describeTree(stage);
  const actual = await describeTree(root);
  assert.deepEqual(actual, expected);
  assert.equal(((await fs.lstat(root)).mode & 0o7777).toString(8), '755', 'the ./ entry is ignored');
  assert.ok(expected.get('bin/sh')?.links?.includes('bin/busybox'), 'the fixture has a hardlink');
});

test('xattrs the filesystem refuses (ENOTSUP, EPERM) are skipped, as Docker does, and the rest are set', async (t) => {
  const { root } = await layerRoot(t);
  await apply(root, [
    // bsdtar on macOS stores names without a Linux namespace; user.* is refused on a fifo.
    file('downloaded', 'd', { xattrs: new Map([['com.apple.quarantine', Buffer.from('0081;')], ['user.keep', Buffer.from('kept')]]) }),
    entry({ path: 'fifo', type: 'fifo', xattrs: new Map([['user.refused', Buffer.from('x')]]) }),
    file('later', 'l', { xattrs: new Map([['user.later', Buffer.from('set')]]) }),
  ]);
  assert.deepEqual([...(await xattrsOf(path.join(root, 'downloaded')))].map(([k, v]) => `${k}=${v}`), ['user.keep=kept']);
  assert.equal((await xattrsOf(path.join(root, 'later'))).get('user.later')?.toString(), 'set');
  assert.ok((await fs.lstat(path.join(root, 'fifo'))).isFIFO());
});
