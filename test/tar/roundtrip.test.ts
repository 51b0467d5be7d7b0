import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import type { TarHeader } from '../../src/core/tar/entry.ts';
import { readTar } from '../../src/core/tar/reader.ts';
import { TarWriter } from '../../src/core/tar/writer.ts';
import { chunked, collect, makeHeader, readAll, writeArchive } from './helpers.ts';

const CAPABILITY = Buffer.from('0100000280000000000000000000000000000000', 'hex');

const entries: Array<readonly [TarHeader, Buffer?]> = [
  [makeHeader({ path: './', type: 'directory', mode: 0o755 })],
  [makeHeader({ path: 'etc/passwd', size: 11, uid: 1000, gid: 1001, uname: 'alice', gname: 'staff', mode: 0o640 }), Buffer.from('root:x:0:0\n')],
  [makeHeader({ path: 'empty' })],
  [
    makeHeader({
      path: 'usr/bin/ping',
      size: 3,
      mode: 0o4755,
      xattrs: new Map([
        ['security.capability', CAPABILITY],
        ['user.bin', Buffer.from('fffe0010', 'hex')],
        ['user.empty', Buffer.alloc(0)],
        ['user.a=b%c', Buffer.from('odd name')],
      ]),
    }),
    Buffer.from([0, 0xff, 0x80]),
  ],
  [makeHeader({ path: 'usr/bin/ping-hard', type: 'hardlink', linkname: 'usr/bin/ping' })],
  [makeHeader({ path: 'link', type: 'symlink', linkname: '../target', mode: 0o777 })],
  [makeHeader({ path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 })],
  [makeHeader({ path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o660 })],
  [makeHeader({ path: 'dev/big', type: 'char', devmajor: 4095, devminor: 1048575 })],
  [makeHeader({ path: 'run/fifo', type: 'fifo', mode: 0o1600 })],
  [makeHeader({ path: 'var/cache/.wh..wh..opq' })],
  [makeHeader({ path: 'etc/.wh.removed.conf' })],
  // 150 bytes: fits ustar's prefix/name split.
  [makeHeader({ path: `${'p'.repeat(99)}/${'n'.repeat(50)}` })],
  // 300 bytes: needs a pax path.
  [makeHeader({ path: `${'d'.repeat(60)}/`.repeat(4) + 'f'.repeat(56) })],
  // A last component over 100 bytes cannot be split.
  [makeHeader({ path: `short/${'n'.repeat(101)}` })],
  [makeHeader({ path: 'ünïcödé/日本.txt', uname: 'jürgen', gname: 'x'.repeat(40) })],
  [makeHeader({ path: 'longlink', type: 'symlink', linkname: `target/${'t'.repeat(150)}` })],
  [makeHeader({ path: 'big-ids', uid: 3_000_000, gid: 2 ** 40 })],
  [makeHeader({ path: 'fraction', mtime: 1_600_000_000.123456 })],
  [makeHeader({ path: 'old', mtime: -86_400 })],
  [makeHeader({ path: 'tiny-fraction', mtime: 5e-7 })],
  [makeHeader({ path: 'far-future', mtime: 2 ** 40 })],
  [makeHeader({ path: 'block-sized', size: 1024 }), Buffer.alloc(1024, 7)],
];

function withoutBodies(read: ReadonlyArray<TarHeader & { data?: Buffer }>): TarHeader[] {
  return read.map(({ data: _data, ...header }) => header);
}

test('everything the writer writes, the reader reads back unchanged', async () => {
  const archive = await writeArchive(entries);
  assert.equal(archive.length % 512, 0);
  const read = await readAll(chunked(archive, 65536));
  assert.deepEqual(withoutBodies(read), entries.map(([header]) => header));
  assert.deepEqual(
    read.map((entry) => entry.data),
    entries.map(([, body]) => body ?? Buffer.alloc(0)),
  );
});

test('chunk boundaries anywhere give the same entries', async () => {
  const archive = await writeArchive(entries);
  const expected = await readAll(chunked(archive, archive.length));
  for (const size of [1, 7, 511, 513, 4096]) {
    assert.deepEqual(await readAll(chunked(archive, size)), expected, `chunk size ${size}`);
  }
});

test('bodies left unread or half read are skipped', async () => {
  const big = Buffer.alloc(200_000);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  const archive = await writeArchive([
    [makeHeader({ path: 'a', size: big.length }), big],
    [makeHeader({ path: 'b', size: big.length }), big],
    [makeHeader({ path: 'c', size: 5 }), Buffer.from('hello')],
  ]);
  const seen: string[] = [];
  for await (const entry of readTar(chunked(archive, 1000))) {
    seen.push(entry.path);
    if (entry.path === 'b') {
      for await (const piece of entry.body) {
        assert.deepEqual(piece, big.subarray(0, piece.length));
        break;
      }
    }
    if (entry.path === 'c') assert.equal((await collect(entry.body)).toString(), 'hello');
  }
  assert.deepEqual(seen, ['a', 'b', 'c']);
});

test('a body read after moving on fails instead of returning other bytes', async () => {
  const archive = await writeArchive([
    [makeHeader({ path: 'a', size: 3 }), Buffer.from('abc')],
    [makeHeader({ path: 'b', size: 3 }), Buffer.from('def')],
  ]);
  const entries = readTar(chunked(archive, 512));
  const first = (await entries.next()).value!;
  await entries.next();
  await assert.rejects(collect(first.body), /tar entry "a".*body read after moving on/);
  await entries.return(undefined);
});

test('stopping early closes the source', async () => {
  const archive = await writeArchive([
    [makeHeader({ path: 'a' })],
    [makeHeader({ path: 'b' })],
  ]);
  let closed = false;
  async function* source(): AsyncGenerator<Buffer> {
    try {
      yield* chunked(archive, 512);
    } finally {
      closed = true;
    }
  }
  for await (const entry of readTar(source())) {
    assert.equal(entry.path, 'a');
    break;
  }
  assert.equal(closed, true);
});

test('the reader consumes the source to its end after the end-of-archive blocks', async () => {
  const archive = await writeArchive([[makeHeader({ path: 'a' })]]);
  const padded = Buffer.concat([archive, Buffer.alloc(10240 - archive.length)]);
  let delivered = 0;
  async function* source(): AsyncGenerator<Buffer> {
    for await (const piece of chunked(padded, 512)) {
      delivered += piece.length;
      yield piece;
    }
  }
  await readAll(source());
  assert.equal(delivered, padded.length);
});

test('a size beyond the 8 GiB octal limit goes through pax and streams through', { timeout: 120_000 }, async () => {
  const size = 8 * 1024 ** 3 + 1;
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  async function* body(): AsyncGenerator<Buffer> {
    let left = size;
    while (left > 0) {
      const piece = zeros.subarray(0, Math.min(left, zeros.length));
      left -= piece.length;
      yield piece;
    }
  }
  const out = new PassThrough();
  const writer = new TarWriter(out);
  const written = (async () => {
    await writer.add(makeHeader({ path: 'huge', size }), body());
    await writer.add(makeHeader({ path: 'after', size: 2 }), Buffer.from('ok'));
    await writer.finish();
  })();
  const seen: Array<[string, number, number]> = [];
  for await (const entry of readTar(out)) {
    let length = 0;
    for await (const piece of entry.body) length += piece.length;
    seen.push([entry.path, entry.size, length]);
  }
  await written;
  assert.deepEqual(seen, [
    ['huge', size, size],
    ['after', 2, 2],
  ]);
});

test('the writer rejects bodies that do not match the header size', async () => {
  const writer = new TarWriter(new PassThrough());
  await assert.rejects(writer.add(makeHeader({ path: 'short', size: 5 }), Buffer.from('abc')), /"short": body has 3 bytes but the header says 5/);
  await assert.rejects(writer.add(makeHeader({ path: 'missing', size: 5 })), /"missing": body has 0 bytes but the header says 5/);
  await assert.rejects(
    writer.add(makeHeader({ path: 'dir', type: 'directory', size: 5 }), Buffer.alloc(5)),
    /"dir": a directory must have size 0/,
  );
  await assert.rejects(writer.add(makeHeader({ path: 'mode', mode: 0o100644 })), /"mode": mode 33188 is outside/);
  await assert.rejects(writer.add(makeHeader({ path: 'link', type: 'symlink' })), /"link": a symlink needs a linkname/);
  // Nothing was written yet, so the writer still works.
  await writer.add(makeHeader({ path: 'fine', size: 2 }), Buffer.from('ok'));
});

test('a streamed body of the wrong length fails the entry and the writer', async () => {
  async function* pieces(...texts: string[]): AsyncGenerator<Buffer> {
    for (const text of texts) yield Buffer.from(text);
  }
  const sink = new PassThrough();
  sink.resume();
  const longer = new TarWriter(sink);
  await assert.rejects(longer.add(makeHeader({ path: 'long', size: 4 }), pieces('abc', 'def')), /"long": body is longer than the header's size 4/);
  await assert.rejects(longer.finish(), /tar writer failed earlier/);

  const shorter = new TarWriter(new PassThrough().resume());
  await assert.rejects(shorter.add(makeHeader({ path: 'short', size: 10 }), pieces('abc')), /"short": body has 3 bytes but the header says 10/);
});

test('the writer waits for a slow consumer instead of buffering', async () => {
  const highWaterMark = 16 * 1024;
  let mostBuffered = 0;
  const received: Buffer[] = [];
  const slow = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, done) {
      received.push(chunk);
      setTimeout(done, 1);
    },
  });
  const piece = Buffer.alloc(8 * 1024, 1);
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 64; i++) {
      mostBuffered = Math.max(mostBuffered, slow.writableLength);
      yield piece;
    }
  }
  const writer = new TarWriter(slow);
  await writer.add(makeHeader({ path: 'stream', size: 64 * piece.length }), body());
  await writer.finish();
  assert.ok(mostBuffered <= highWaterMark + piece.length, `buffered up to ${mostBuffered} bytes`);
  const entries = await readAll(chunked(Buffer.concat(received), 4096));
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.data.length, 64 * piece.length);
});

test('write errors of the output surface from the writer', async () => {
  const failing = (): Writable =>
    new Writable({
      write(_chunk, _encoding, done) {
        done(new Error('disk full'));
      },
    });
  const mentionsDiskFull = (error: Error): boolean => /disk full/.test(`${error.message} ${(error.cause as Error | undefined)?.message}`);

  const small = new TarWriter(failing());
  await small.add(makeHeader({ path: 'a' }));
  await assert.rejects(small.finish(), mentionsDiskFull);

  const large = new TarWriter(failing());
  await assert.rejects(large.add(makeHeader({ path: 'big', size: 200_000 }), Buffer.alloc(200_000)), mentionsDiskFull);
  await assert.rejects(large.add(makeHeader({ path: 'next' })), /tar writer failed earlier/);
});

test('entries that fit ustar get no pax header; the rest get one', async () => {
  const fitting = [
    makeHeader({ path: 'etc/passwd', uname: 'root', gname: 'g'.repeat(31), uid: 2_097_151 }),
    makeHeader({ path: `${'p'.repeat(155)}/${'n'.repeat(100)}` }),
    makeHeader({ path: 'l', type: 'symlink', linkname: 't'.repeat(100) }),
  ];
  for (const header of fitting) {
    const archive = await writeArchive([[header]]);
    assert.equal(archive.length, 512 + 1024, header.path);
    assert.equal(String.fromCharCode(archive[156]!), header.type === 'symlink' ? '2' : '0', header.path);
  }
  const needingPax = [
    makeHeader({ path: 'ü' }),
    makeHeader({ path: `${'p'.repeat(156)}/n` }),
    makeHeader({ path: 'uid', uid: 2_097_152 }),
    makeHeader({ path: 'mtime', mtime: 1.5 }),
    makeHeader({ path: 'uname', uname: 'u'.repeat(32) }),
    makeHeader({ path: 'xattr', xattrs: new Map([['user.x', Buffer.from('1')]]) }),
  ];
  for (const header of needingPax) {
    const archive = await writeArchive([[header]]);
    assert.equal(String.fromCharCode(archive[156]!), 'x', header.path);
    assert.deepEqual(withoutBodies(await readAll(chunked(archive, 512))), [header]);
  }
});
