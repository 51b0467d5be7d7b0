// Archives written by TarWriter, listed and extracted by GNU tar, and the extracted tree
// checked with lstat and getfattr.

import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { lstat, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { TarHeader } from '../../src/core/tar/entry.ts';
import { TarWriter } from '../../src/core/tar/writer.ts';
import { run } from '../helpers/process.ts';
import { makeHeader, makeTempDir } from './helpers.ts';

const CAPABILITY = Buffer.from('0100000280000000000000000000000000000000', 'hex');
const DEEP_PATH = `${'x'.repeat(60)}/`.repeat(5) + 'file';
const LONG_TARGET = `target/${'t'.repeat(150)}`;
const DATA = Buffer.alloc(1_000_003);
for (let i = 0; i < DATA.length; i++) DATA[i] = (i * 13) % 256;

async function* inPieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

function entries(): Array<[TarHeader, (Buffer | AsyncIterable<Buffer>)?]> {
  const dir = (p: string, mode = 0o755): [TarHeader] => [makeHeader({ path: p, type: 'directory', mode, mtime: 1_500_000_000 })];
  return [
    dir('./'),
    dir('etc/'),
    [makeHeader({ path: 'etc/app.conf', mode: 0o640, uid: 1000, gid: 1001, mtime: 1_600_000_000.5, size: 10 }), Buffer.from('key=value\n')],
    [makeHeader({ path: 'etc/.wh.removed.conf', mode: 0o600 })],
    [makeHeader({ path: 'etc/link', type: 'symlink', linkname: 'app.conf', mode: 0o777 })],
    [makeHeader({ path: 'etc/longlink', type: 'symlink', linkname: LONG_TARGET, mode: 0o777 })],
    dir('usr/'),
    dir('usr/bin/'),
    [
      makeHeader({
        path: 'usr/bin/ping',
        mode: 0o4755,
        size: 4,
        xattrs: new Map([
          ['security.capability', CAPABILITY],
          ['user.bin', Buffer.from('fffe0010', 'hex')],
          ['user.a=b%c', Buffer.from('odd name')],
          ['user.empty', Buffer.alloc(0)],
        ]),
      }),
      Buffer.from([0x7f, 0x45, 0x4c, 0x46]),
    ],
    [makeHeader({ path: 'usr/bin/ping-hard', type: 'hardlink', linkname: 'usr/bin/ping', mode: 0o4755 })],
    [makeHeader({ path: 'usr/bin/sgid', mode: 0o2711, size: 1 }), Buffer.from('g')],
    dir('dev/'),
    [makeHeader({ path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 })],
    [makeHeader({ path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 })],
    [makeHeader({ path: 'dev/wh0', type: 'char', devmajor: 0, devminor: 0, mode: 0o600 })],
    dir('run/'),
    [makeHeader({ path: 'run/fifo', type: 'fifo', mode: 0o620 })],
    dir('tmp/', 0o1777),
    dir('var/'),
    [makeHeader({ path: 'var/cache/', type: 'directory', mode: 0o700, uid: 33, gid: 33 })],
    [makeHeader({ path: 'var/cache/.wh..wh..opq' })],
    [makeHeader({ path: DEEP_PATH, size: 5 }), Buffer.from('deep\n')],
    [makeHeader({ path: 'ünïcödé/日本.txt', size: 6 }), Buffer.from('utf-8\n')],
    [makeHeader({ path: 'big-ids', uid: 3_000_000, gid: 3_000_001, mtime: -86_400 })],
    [makeHeader({ path: 'data.bin', size: DATA.length, mtime: 1_700_000_000 }), inPieces(DATA, 65_536)],
  ];
}

async function writeFileArchive(file: string): Promise<void> {
  const writer = new TarWriter(createWriteStream(file));
  for (const [header, body] of entries()) await writer.add(header, body);
  await writer.finish();
}

async function xattrsOf(file: string): Promise<Map<string, string>> {
  const { stdout } = await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', file]);
  const xattrs = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^([^#=].*)=0x([0-9a-f]*)$/.exec(line);
    // getfattr escapes "=" in names as \075.
    if (match) xattrs.set(match[1]!.replaceAll('\\075', '='), match[2]!);
  }
  return xattrs;
}

test('GNU tar lists and extracts the writer output with everything intact', async (t) => {
  const dir = await makeTempDir(t);
  const archive = path.join(dir, 'layer.tar');
  const out = path.join(dir, 'out');
  await writeFileArchive(archive);

  const listing = (await run('tar', ['-tvf', archive, '--numeric-owner'])).stdout.trim().split('\n');
  assert.equal(listing.length, entries().length);
  const linesByName = new Map(listing.map((text) => [/ \d\d:\d\d (.+?)(?: -> .*| link to .*)?$/.exec(text)?.[1], text]));
  const line = (name: string): string => linesByName.get(name) ?? assert.fail(`${name} not listed`);
  assert.match(line('usr/bin/ping'), /^-rwsr-xr-x 0\/0 +4 /);
  assert.match(line('etc/link'), /^lrwxrwxrwx .* etc\/link -> app\.conf$/);
  assert.match(line('usr/bin/ping-hard'), /^hrwsr-xr-x .* usr\/bin\/ping-hard link to usr\/bin\/ping$/);
  assert.match(line('dev/null'), /^crw-rw-rw- 0\/0 +1,3 /);
  assert.match(line('dev/sda'), /^brw-rw---- 0\/6 +8,0 /);
  assert.match(line('run/fifo'), /^prw--w---- /);
  assert.match(line('etc/app.conf'), /^-rw-r----- 1000\/1001 +10 /);

  await run('mkdir', [out]);
  await run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', archive, '-C', out]);
  // GNU tar's own comparison of archive and tree: contents, modes, owners, times, links.
  await run('tar', ['--numeric-owner', '-df', archive, '-C', out]);

  for (const [header, body] of entries()) {
    const file = path.join(out, header.path);
    const stat = await lstat(file, { bigint: true });
    const context = `extracted ${header.path}`;
    const kind = {
      file: stat.isFile(),
      hardlink: stat.isFile(),
      directory: stat.isDirectory(),
      symlink: stat.isSymbolicLink(),
      char: stat.isCharacterDevice(),
      block: stat.isBlockDevice(),
      fifo: stat.isFIFO(),
    }[header.type];
    assert.ok(kind, `${context} is a ${header.type}`);
    if (header.type !== 'symlink') assert.equal(Number(stat.mode & 0o7777n), header.mode, context);
    assert.equal(Number(stat.uid), header.uid, context);
    assert.equal(Number(stat.gid), header.gid, context);
    if (header.type !== 'hardlink') {
      assert.equal(stat.mtimeNs, BigInt(Math.round(header.mtime * 1000)) * 1_000_000n, context);
    }
    if (header.type === 'char' || header.type === 'block') {
      const rdev = Number(stat.rdev);
      assert.deepEqual([(rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)], [header.devmajor, header.devminor], context);
    }
    if (header.type === 'symlink') assert.equal(await readlink(file), header.linkname, context);
    if (header.type === 'hardlink') assert.equal(stat.ino, (await lstat(path.join(out, header.linkname), { bigint: true })).ino, context);
    if (header.type === 'file') {
      const expected = Buffer.isBuffer(body) ? body : header.path === 'data.bin' ? DATA : Buffer.alloc(0);
      assert.deepEqual(await readFile(file), expected, context);
    }
  }

  assert.deepEqual(
    await xattrsOf(path.join(out, 'usr/bin/ping')),
    new Map([
      ['security.capability', CAPABILITY.toString('hex')],
      ['user.bin', 'fffe0010'],
      ['user.a=b%c', Buffer.from('odd name').toString('hex')],
      ['user.empty', ''],
    ]),
  );
  assert.deepEqual(await xattrsOf(path.join(out, 'etc/app.conf')), new Map());
});
