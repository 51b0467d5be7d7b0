// Header variants that GNU tar does not write but other writers do, laid out by hand.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chunked, END_OF_ARCHIVE, rawEntry, rawHeader, rawPax, readAll } from './helpers.ts';

test('libarchive xattrs: url-encoded names and base64 values', async () => {
  const archive = Buffer.concat([
    rawEntry(
      { name: 'PaxHeaders/ping', flag: 'x' },
      rawPax([
        ['LIBARCHIVE.xattr.security.capability', Buffer.from('0100000280000000000000000000000000000000', 'hex').toString('base64')],
        ['LIBARCHIVE.xattr.user.%C3%BC%3Dx', Buffer.from('fffe0010', 'hex').toString('base64')],
      ]),
    ),
    rawEntry({ name: 'ping', flag: '0' }, Buffer.from('elf')),
    END_OF_ARCHIVE,
  ]);
  const [entry] = await readAll(chunked(archive, 512));
  assert.deepEqual(
    entry!.xattrs,
    new Map([
      ['security.capability', Buffer.from('0100000280000000000000000000000000000000', 'hex')],
      ['user.ü=x', Buffer.from('fffe0010', 'hex')],
    ]),
  );
  assert.equal(entry!.data.toString(), 'elf');
});

test('global pax headers apply to later entries until a per-entry value overrides or unsets them', async () => {
  const archive = Buffer.concat([
    rawEntry({ name: 'pax_global_header', flag: 'g' }, rawPax([['uname', 'builder'], ['mtime', '1700000000.25'], ['SCHILY.xattr.user.all', 'shared']])),
    rawEntry({ name: 'a', flag: '0' }),
    rawEntry({ name: 'PaxHeaders/b', flag: 'x' }, rawPax([['uname', 'someone'], ['mtime', '']])),
    rawEntry({ name: 'b', flag: '0', mtime: 42 }),
    END_OF_ARCHIVE,
  ]);
  const [a, b] = await readAll(chunked(archive, 100));
  assert.equal(a!.uname, 'builder');
  assert.equal(a!.mtime, 1700000000.25);
  assert.deepEqual(a!.xattrs, new Map([['user.all', Buffer.from('shared')]]));
  assert.equal(b!.uname, 'someone');
  assert.equal(b!.mtime, 42, 'an empty pax value falls back to the ustar field');
  assert.deepEqual(b!.xattrs, new Map([['user.all', Buffer.from('shared')]]));
});

test('pax record lengths are byte counts, so multi-byte names and binary values survive', async () => {
  const binary = Buffer.from([0x0a, 0x3d, 0x20, 0x00, 0xff, 0x0a]);
  const archive = Buffer.concat([
    rawEntry(
      { name: 'PaxHeaders/x', flag: 'x' },
      rawPax([
        ['path', 'ディレクトリ/ファイル'],
        ['linkpath', 'ü'.repeat(200)],
        ['SCHILY.xattr.user.nl', binary],
        ['size', '5'],
        ['uid', '4000000'],
        ['gid', '5'],
        ['gname', 'grüppe'],
      ]),
    ),
    rawEntry({ name: 'stand-in', flag: '0' }, Buffer.from('12345')),
    END_OF_ARCHIVE,
  ]);
  const [entry] = await readAll(chunked(archive, 3));
  assert.equal(entry!.path, 'ディレクトリ/ファイル');
  assert.equal(entry!.linkname, 'ü'.repeat(200));
  assert.deepEqual(entry!.xattrs.get('user.nl'), binary);
  assert.equal(entry!.size, 5);
  assert.equal(entry!.uid, 4000000);
  assert.equal(entry!.gid, 5);
  assert.equal(entry!.gname, 'grüppe');
  assert.equal(entry!.data.toString(), '12345');
});

test('signed-char checksums from old writers are accepted', async () => {
  const archive = Buffer.concat([rawEntry({ name: 'naïve', flag: '0', signedChecksum: true }), END_OF_ARCHIVE]);
  const [entry] = await readAll(chunked(archive, 512));
  assert.equal(entry!.path, 'naïve');
});

test('base-256 size fields are decoded', async () => {
  const sizeField = Buffer.alloc(12);
  sizeField[0] = 0x80;
  sizeField.writeUIntBE(700, 6, 6);
  const data = Buffer.alloc(700, 9);
  const archive = Buffer.concat([rawHeader({ name: 'b256', flag: '0', sizeField }), data, Buffer.alloc(324), END_OF_ARCHIVE]);
  const [entry] = await readAll(chunked(archive, 512));
  assert.equal(entry!.size, 700);
  assert.deepEqual(entry!.data, data);
});

test('V7 headers without magic are read, ignoring the ustar-only fields', async () => {
  const archive = Buffer.concat([rawEntry({ name: 'old/file', flag: '\0', v7: true }, Buffer.from('v7')), END_OF_ARCHIVE]);
  const [entry] = await readAll(chunked(archive, 512));
  assert.equal(entry!.type, 'file');
  assert.equal(entry!.path, 'old/file');
  assert.equal(entry!.uname, '');
  assert.equal(entry!.data.toString(), 'v7');
});

test('type 7 (contiguous) is a regular file', async () => {
  const archive = Buffer.concat([rawEntry({ name: 'contig', flag: '7' }, Buffer.from('c')), END_OF_ARCHIVE]);
  const [entry] = await readAll(chunked(archive, 512));
  assert.equal(entry!.type, 'file');
  assert.equal(entry!.data.toString(), 'c');
});

test('header-only types carry no data whatever their size field says', async () => {
  const archive = Buffer.concat([rawHeader({ name: 'dir/', flag: '5', size: 4096 }), rawEntry({ name: 'next', flag: '0' }, Buffer.from('n')), END_OF_ARCHIVE]);
  const entries = await readAll(chunked(archive, 512));
  assert.deepEqual(
    entries.map((entry) => [entry.path, entry.type, entry.size]),
    [
      ['dir/', 'directory', 0],
      ['next', 'file', 1],
    ],
  );
});

test('archives ending without the end-of-archive blocks, or with just one, are complete', async () => {
  const body = rawEntry({ name: 'only', flag: '0' }, Buffer.from('data'));
  for (const archive of [body, Buffer.concat([body, Buffer.alloc(512)])]) {
    const entries = await readAll(chunked(archive, 512));
    assert.deepEqual(
      entries.map((entry) => [entry.path, entry.data.toString()]),
      [['only', 'data']],
    );
  }
  assert.deepEqual(await readAll(chunked(Buffer.alloc(0), 512)), []);
});
