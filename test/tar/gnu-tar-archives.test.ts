// Archives made by GNU tar from a tree staged on disk, read back with readTar and checked
// field by field against lstat and getfattr of the same tree.

import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { TarEntryType } from '../../src/core/tar/entry.ts';
import { run } from '../helpers/process.ts';
import { makeTempDir, type ReadEntry, readAll } from './helpers.ts';

const CAPABILITY_HEX = '0100000280000000000000000000000000000000';
const DEEP_PATH = `${'x'.repeat(60)}/`.repeat(5) + 'file'; // 309 bytes
const LONG_NAME = `d/${'n'.repeat(120)}`;
const LONG_TARGET = `target/${'t'.repeat(150)}`;
const FRACTIONAL_TIME = '1600000000.123456789';

/** A layer-like tree with everything a layer tar has to carry. */
async function stage(root: string): Promise<void> {
  const file = async (rel: string, content: string | Buffer, mode = 0o644): Promise<void> => {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), content);
    await chmod(path.join(root, rel), mode);
  };
  await file('etc/app.conf', 'key=value\n', 0o640);
  await chown(path.join(root, 'etc/app.conf'), 1000, 1001);
  await file('etc/.wh.removed.conf', '', 0o600);
  await mkdir(path.join(root, 'var/cache'), { recursive: true });
  await file('var/cache/.wh..wh..opq', '');
  await chown(path.join(root, 'var/cache'), 33, 33);
  await chmod(path.join(root, 'var/cache'), 0o700);

  await file('usr/bin/ping', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0xff]), 0o755);
  await run('setfattr', ['-n', 'security.capability', '-v', `0x${CAPABILITY_HEX}`, path.join(root, 'usr/bin/ping')]);
  await run('setfattr', ['-n', 'user.bin', '-v', '0xfffe0010', path.join(root, 'usr/bin/ping')]);
  await run('setfattr', ['-n', 'user.comment', '-v', 'hello world', path.join(root, 'usr/bin/ping')]);
  // After the xattrs: setting security.capability is allowed on a setuid file, but chmod last keeps both.
  await chmod(path.join(root, 'usr/bin/ping'), 0o4755);
  await link(path.join(root, 'usr/bin/ping'), path.join(root, 'usr/bin/ping-hard'));
  await file('usr/bin/sgid', 'g', 0o2711);
  await mkdir(path.join(root, 'tmp'));
  await chmod(path.join(root, 'tmp'), 0o1777);

  await mkdir(path.join(root, 'dev'));
  await run('mknod', [path.join(root, 'dev/null'), 'c', '1', '3']);
  await run('mknod', [path.join(root, 'dev/sda'), 'b', '8', '0']);
  await run('mknod', [path.join(root, 'dev/wh0'), 'c', '0', '0']);
  await mkdir(path.join(root, 'run'));
  await run('mkfifo', ['-m', '0620', path.join(root, 'run/fifo')]);

  await symlink('app.conf', path.join(root, 'etc/link'));
  await symlink(LONG_TARGET, path.join(root, 'etc/longlink'));
  await file(LONG_NAME, 'long name\n');
  await file(DEEP_PATH, 'deep\n');
  await file('ünïcödé.txt', 'utf-8\n');
  await file('big-ids', 'ids\n');
  await chown(path.join(root, 'big-ids'), 3_000_000, 3_000_001);
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256;
  await file('data.bin', big);

  await run('touch', ['-h', '-d', `@${FRACTIONAL_TIME}`, path.join(root, 'etc/app.conf'), path.join(root, 'etc/link')]);
  await run('touch', ['-d', '@-86400', path.join(root, 'big-ids')]);
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(path.join(root, rel))) {
    const child = rel === '' ? name : `${rel}/${name}`;
    found.push(child);
    if ((await lstat(path.join(root, child))).isDirectory()) found.push(...(await walk(root, child)));
  }
  return found;
}

async function xattrsOf(file: string): Promise<Map<string, Buffer>> {
  const { stdout } = await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', file]);
  const xattrs = new Map<string, Buffer>();
  for (const line of stdout.split('\n')) {
    const match = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (match) xattrs.set(match[1]!, Buffer.from(match[2]!, 'hex'));
  }
  return xattrs;
}

const accountNames = new Map<string, Promise<string>>();

/** The account name GNU tar looked up for an id, '' when the system has none. */
function accountName(database: 'passwd' | 'group', id: bigint): Promise<string> {
  const key = `${database}:${id}`;
  let name = accountNames.get(key);
  if (name === undefined) {
    name = run('getent', [database, String(id)], { allowFail: true }).then(({ stdout }) => stdout.split(':')[0] ?? '');
    accountNames.set(key, name);
  }
  return name;
}

function typeOf(stat: Awaited<ReturnType<typeof lstat>>): TarEntryType {
  if (stat.isDirectory()) return 'directory';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isCharacterDevice()) return 'char';
  if (stat.isBlockDevice()) return 'block';
  if (stat.isFIFO()) return 'fifo';
  return 'file';
}

interface Expectations {
  /** mtime as the format stores it, from the file's times in nanoseconds. */
  mtime: (seconds: bigint, nanoseconds: bigint) => number;
  xattrs: boolean;
}

/** Compares every entry with the staged file it came from. */
async function checkAgainstDisk(root: string, entries: ReadEntry[], expect: Expectations): Promise<void> {
  const staged = await walk(root);
  assert.deepEqual(entries.map((entry) => entry.path.replace(/^\.\//, '').replace(/\/$/, '')).filter(Boolean).sort(), staged.sort());
  assert.equal(entries[0]!.path, './');
  const firstByInode = new Map<bigint, string>();
  for (const entry of entries) {
    const rel = entry.path.replace(/^\.\//, '');
    const file = path.join(root, rel);
    const stat = await lstat(file, { bigint: true });
    const context = `entry ${entry.path}`;
    const seenAs = firstByInode.get(stat.ino);
    if (seenAs === undefined && !stat.isDirectory()) firstByInode.set(stat.ino, entry.path);
    const type = seenAs === undefined ? typeOf(await lstat(file)) : 'hardlink';
    assert.equal(entry.type, type, context);
    assert.equal(entry.path.endsWith('/'), type === 'directory', context);
    assert.equal(entry.mode, Number(stat.mode & 0o7777n), context);
    assert.equal(entry.uid, Number(stat.uid), context);
    assert.equal(entry.gid, Number(stat.gid), context);
    assert.equal(entry.uname, await accountName('passwd', stat.uid), context);
    assert.equal(entry.gname, await accountName('group', stat.gid), context);
    assert.equal(entry.mtime, expect.mtime(stat.mtimeNs / 1_000_000_000n, stat.mtimeNs % 1_000_000_000n), context);
    const rdev = Number(stat.rdev);
    assert.equal(entry.devmajor, type === 'char' || type === 'block' ? (rdev >> 8) & 0xfff : 0, context);
    assert.equal(entry.devminor, type === 'char' || type === 'block' ? (rdev & 0xff) | ((rdev >> 12) & 0xfff00) : 0, context);
    assert.equal(entry.linkname, type === 'symlink' ? await readlink(file) : type === 'hardlink' ? seenAs : '', context);
    assert.equal(entry.size, type === 'file' ? Number(stat.size) : 0, context);
    assert.deepEqual(entry.data, type === 'file' ? await readFile(file) : Buffer.alloc(0), context);
    assert.deepEqual(entry.xattrs, expect.xattrs && type !== 'symlink' && type !== 'hardlink' ? await xattrsOf(file) : new Map(), context);
  }
}

function entryNamed(entries: ReadEntry[], name: string): ReadEntry {
  const entry = entries.find((candidate) => candidate.path === name);
  assert.ok(entry, `no entry ${name}`);
  return entry;
}

test('a pax archive from GNU tar --xattrs reads back exactly, xattrs byte for byte', async (t) => {
  const dir = await makeTempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  await stage(root);
  const archive = path.join(dir, 'layer.tar');
  await run('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '-cf', archive, '-C', root, '.']);
  const entries = await readAll(createReadStream(archive));
  await checkAgainstDisk(root, entries, {
    mtime: (seconds, nanoseconds) => Number(`${seconds}.${String(nanoseconds).padStart(9, '0')}`),
    xattrs: true,
  });
  const ping = [entryNamed(entries, './usr/bin/ping'), entryNamed(entries, './usr/bin/ping-hard')].find((entry) => entry.type === 'file')!;
  assert.equal(ping.xattrs.get('security.capability')?.toString('hex'), CAPABILITY_HEX);
  assert.equal(ping.xattrs.get('user.bin')?.toString('hex'), 'fffe0010');
  assert.equal(ping.mode, 0o4755);
  assert.equal(entryNamed(entries, './etc/app.conf').mtime, 1600000000.123456789);
  assert.equal(entryNamed(entries, './big-ids').uid, 3_000_000);
  assert.equal(entryNamed(entries, './big-ids').mtime, -86400);
  assert.equal(entryNamed(entries, `./${DEEP_PATH}`).data.toString(), 'deep\n');
  assert.equal(entryNamed(entries, './etc/longlink').linkname, LONG_TARGET);
  assert.equal(entryNamed(entries, './ünïcödé.txt').data.toString(), 'utf-8\n');
});

test('a GNU-format archive with long-name records and base-256 numbers reads back exactly', async (t) => {
  const dir = await makeTempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  await stage(root);
  const archive = path.join(dir, 'layer.tar');
  await run('tar', ['--format=gnu', '-cf', archive, '-C', root, '.']);
  const bytes = await readFile(archive);
  // Make sure the features under test are really in the archive.
  assert.ok(bytes.includes('././@LongLink'), 'GNU long-name records present');
  const bigIds = bytes.indexOf('./big-ids\0');
  assert.equal(bytes[bigIds + 108]! & 0x80, 0x80, 'uid stored in base-256');
  assert.equal(bytes[bigIds + 136], 0xff, 'negative mtime stored in base-256');

  const entries = await readAll(createReadStream(archive));
  await checkAgainstDisk(root, entries, { mtime: (seconds) => Number(seconds), xattrs: false });
  assert.equal(entryNamed(entries, `./${LONG_NAME}`).data.toString(), 'long name\n');
  assert.equal(entryNamed(entries, './big-ids').mtime, -86400);
});

test('a ustar archive splits long names into prefix and name', async (t) => {
  const dir = await makeTempDir(t);
  const root = path.join(dir, 'root');
  const name = `${'p'.repeat(80)}/${'q'.repeat(70)}/${'f'.repeat(90)}`;
  await mkdir(path.join(root, path.dirname(name)), { recursive: true });
  await writeFile(path.join(root, name), 'split\n');
  await writeFile(path.join(root, '.wh.x'), '');
  const archive = path.join(dir, 'ustar.tar');
  await run('tar', ['--format=ustar', '-cf', archive, '-C', root, '.']);
  const bytes = await readFile(archive);
  assert.ok(!bytes.includes('PaxHeaders') && !bytes.includes('@LongLink'), 'plain ustar only');
  const entries = await readAll(createReadStream(archive));
  await checkAgainstDisk(root, entries, { mtime: (seconds) => Number(seconds), xattrs: false });
  assert.equal(entryNamed(entries, `./${name}`).data.toString(), 'split\n');
});
