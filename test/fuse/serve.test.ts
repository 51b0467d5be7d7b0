// The FUSE server against real kernel clients: an in-memory tree is mounted and every check runs
// in a separate process (stat, ls, cat, dd, getfattr …), as a container would see the files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FILE_TYPE, type ReadOnlyFilesystem } from '../../src/core/fuse/filesystem.ts';
import { isMounted } from '../../src/core/fuse/mount.ts';
import { log } from '../../src/core/log.ts';
import { pollUntil, run, stopAfter } from '../helpers/process.ts';
import { mountForTest, q, sh } from './helpers.ts';
import { MemoryFilesystem, TabledMemoryFilesystem } from './memory-fs.ts';

// Not a multiple of the page size, so the last READ is a short one.
const BIG = randomBytes(8 * 1024 * 1024 + 12_345);
const BINARY_XATTR = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const CAPABILITY = Buffer.from('0100000200040000000000000000000000000000', 'hex');
const UNICODE_NAME = 'ünï cødé ☃.txt';
const LONG_NAME = 'n'.repeat(255);
const MANY = 5000;
// A static program to run from a mount (busybox-static, which the plugin's rootfs needs too).
const BUSYBOX = '/bin/busybox';

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The tree every test mounts; the root has ino 500, so the server must map the kernel's node 1. */
function buildTree(): MemoryFilesystem {
  const fs = new MemoryFilesystem(500n);
  fs.file('hello.txt', 'hello, world\n', { uid: 1000, gid: 1001, perm: 0o640, mtime: 1_234_567_890, mtimeNs: 123_456_789 });
  fs.file('big.bin', BIG);
  fs.file('big-copy.bin', BIG);
  fs.file('empty', '');
  fs.file('run.sh', '#!/bin/sh\necho "ran $1"\n', { perm: 0o755 });
  fs.file('suid', 'x', { perm: 0o4755, mtime: -86_400 }); // a day before the epoch
  fs.file(UNICODE_NAME, 'unicode\n');
  fs.file(LONG_NAME, 'long name\n');
  fs.dir('dir', { uid: 42, gid: 43, perm: 0o750 });
  fs.dir('dir/nested');
  fs.file('dir/nested/deep.txt', 'deep\n');
  fs.dir('many');
  for (let i = 0; i < MANY; i++) fs.file(`many/f${String(i).padStart(5, '0')}`, `file ${i}\n`);
  fs.dir('links');
  fs.symlink('links/abs', '/etc/hostname');
  fs.symlink('links/rel', '../hello.txt');
  fs.symlink('links/dangling', 'does/not/exist');
  fs.dir('hard');
  fs.file('hard/a', 'shared content\n', { perm: 0o600 });
  fs.hardlink('hard/b', 'hard/a');
  fs.dir('special');
  fs.device('special/null', 'char', 1, 3);
  fs.device('special/sda1', 'block', 8, 1);
  fs.device('special/wide', 'char', 300, 70_000); // numbers beyond the old 8-bit encoding
  fs.fifo('special/fifo');
  fs.file('xattrs', 'x');
  fs.xattr('xattrs', 'user.text', 'value');
  fs.xattr('xattrs', 'user.binary', BINARY_XATTR);
  fs.xattr('xattrs', 'user.empty', '');
  fs.xattr('xattrs', 'security.capability', CAPABILITY);
  return fs;
}

test('stat shows every entry type with its attributes', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const paths = ['', 'hello.txt', 'big.bin', 'empty', 'suid', UNICODE_NAME, LONG_NAME, 'dir', 'dir/nested/deep.txt', 'many', 'links/rel', 'hard/a', 'special/null', 'special/sda1', 'special/wide', 'special/fifo'];
  const { stdout } = await run('stat', ['-c', '%f|%h|%u|%g|%s|%b|%i|%.9Y|%t|%T', ...paths.map((p) => path.join(mountpoint, p))]);
  const lines = stdout.trimEnd().split('\n');
  paths.forEach((p, i) => {
    const attr = fs.attrOf(p);
    const type = attr.mode & FILE_TYPE.MASK;
    const isDevice = type === FILE_TYPE.CHAR_DEVICE || type === FILE_TYPE.BLOCK_DEVICE;
    const major = isDevice ? ((attr.rdev >>> 8) & 0xfff).toString(16) : '0';
    const minor = isDevice ? ((attr.rdev & 0xff) | ((attr.rdev >>> 12) & ~0xff)).toString(16) : '0';
    const mtime = `${attr.mtime}.${String(attr.mtimeNs ?? 0).padStart(9, '0')}`;
    const expected = [attr.mode.toString(16), attr.nlink, attr.uid, attr.gid, attr.size, attr.blocks, attr.ino, mtime, major, minor].join('|');
    assert.equal(lines[i], expected, `stat of /${p}`);
  });
  assert.equal(lines[0]!.split('|')[6], '500', 'the root shows the filesystem root ino');
  assert.equal(lines[paths.indexOf('special/wide')]!.split('|').slice(8).join(':'), `${(300).toString(16)}:${(70_000).toString(16)}`);

  const { stdout: df } = await run('df', ['--output=fstype,target', mountpoint]);
  assert.match(df, new RegExp(`fuse\\.cvmfs-graphdriver +${mountpoint}`));
});

test('listings: a small directory in full, and 5000 entries through READDIR and READDIRPLUS', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const root = await run('ls', ['-1a', mountpoint]);
  const expectedRoot = ['.', '..', 'big-copy.bin', 'big.bin', 'dir', 'empty', 'hard', 'hello.txt', 'links', 'many', LONG_NAME, 'run.sh', 'special', 'suid', 'xattrs', UNICODE_NAME];
  assert.deepEqual(root.stdout.trimEnd().split('\n').sort(), expectedRoot.sort());

  const longListing = await run('ls', ['-la', path.join(mountpoint, 'links')]);
  assert.match(longListing.stdout, /^l.* abs -> \/etc\/hostname$/m);
  assert.match(longListing.stdout, /^l.* rel -> \.\.\/hello\.txt$/m);
  assert.match(longListing.stdout, /^l.* dangling -> does\/not\/exist$/m);

  // Unsorted, so the order is the server's; the kernel fetches the listing over several READDIRs.
  const names = (await run('ls', ['-1aU', path.join(mountpoint, 'many')])).stdout.trimEnd().split('\n');
  const expectedNames = ['.', '..', ...Array.from({ length: MANY }, (_, i) => `f${String(i).padStart(5, '0')}`)];
  assert.deepEqual(names, expectedNames);

  // find reads the types from the listing and stats every entry: attributes from READDIRPLUS or LOOKUP.
  const found = (await run('find', [path.join(mountpoint, 'many'), '-type', 'f', '-printf', '%f %s %i %m\n'])).stdout.trimEnd().split('\n');
  assert.equal(found.length, MANY);
  for (const line of found) {
    const [name, size, ino, mode] = line.split(' ');
    const attr = fs.attrOf(`many/${name}`);
    assert.equal(`${size} ${ino} ${mode}`, `${attr.size} ${attr.ino} ${(attr.mode & 0o7777).toString(8)}`, name);
  }
  const { stdout: count } = await sh(`ls -la ${q(path.join(mountpoint, 'many'))} | grep -c '^-rw-r--r-- 1 root root'`);
  assert.equal(count.trim(), String(MANY));
});

test('file content: whole files, ranges, direct I/O, names of every kind', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const at = (p: string) => q(path.join(mountpoint, p));
  assert.equal((await run('sha256sum', [path.join(mountpoint, 'big.bin')])).stdout.split(' ')[0], sha256(BIG));
  assert.equal((await run('cat', [path.join(mountpoint, 'hello.txt')])).stdout, 'hello, world\n');
  assert.equal((await run('cat', [path.join(mountpoint, 'links/rel')])).stdout, 'hello, world\n');
  assert.equal((await run('cat', [path.join(mountpoint, UNICODE_NAME)])).stdout, 'unicode\n');
  assert.equal((await run('cat', [path.join(mountpoint, LONG_NAME)])).stdout, 'long name\n');
  assert.equal((await run('cat', [path.join(mountpoint, 'dir/nested/deep.txt')])).stdout, 'deep\n');
  assert.equal((await sh(`wc -c < ${at('empty')}`)).stdout.trim(), '0');

  const ranges: Array<[number, number, string]> = [
    [4096 * 1000, 4096 * 7, `bs=4096 skip=1000 count=7`],
    [5_000_003, 50_000, `bs=1 skip=5000003 count=50000`],
    [8 * 1024 * 1024, 12_345, `bs=4096 skip=2048 count=100`], // asks for more than is left
  ];
  for (const [offset, length, ddArgs] of ranges) {
    const { stdout } = await sh(`dd if=${at('big-copy.bin')} ${ddArgs} status=none | sha256sum`);
    assert.equal(stdout.split(' ')[0], sha256(BIG.subarray(offset, offset + length)), ddArgs);
  }
  // O_DIRECT bypasses the page cache: READs of up to 1 MiB straight from the server.
  const direct = await sh(`dd if=${at('big.bin')} bs=1M iflag=direct status=none | sha256sum`);
  assert.equal(direct.stdout.split(' ')[0], sha256(BIG));
  assert.equal((await sh(`tail -c 100 ${at('big.bin')} | sha256sum`)).stdout.split(' ')[0], sha256(BIG.subarray(-100)));

  // Executing a program from the mount. Through sh: Node's spawn blocks its main thread until the
  // child has exec'd, and exec'ing a file on the mount needs that thread to answer (deadlock).
  assert.equal((await sh(`${at('run.sh')} here`)).stdout, 'ran here\n');
});

test('symlinks, hardlinks, devices and fifos', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const at = (p: string) => path.join(mountpoint, p);
  const { stdout: targets } = await run('readlink', [at('links/abs'), at('links/rel'), at('links/dangling')]);
  assert.deepEqual(targets.trimEnd().split('\n'), ['/etc/hostname', '../hello.txt', 'does/not/exist']);
  assert.equal((await run('readlink', ['-f', at('links/rel')])).stdout.trim(), at('hello.txt'));

  const { stdout: links } = await run('stat', ['-c', '%i %h %a', at('hard/a'), at('hard/b')]);
  const [a, b] = links.trimEnd().split('\n');
  assert.equal(a, `${fs.attrOf('hard/a').ino} 2 600`);
  assert.equal(b, a, 'both names show one inode');
  assert.equal((await run('cat', [at('hard/b')])).stdout, 'shared content\n');

  const { stdout: kinds } = await run('stat', ['-c', '%F %t:%T', at('special/null'), at('special/sda1'), at('special/fifo')]);
  assert.deepEqual(kinds.trimEnd().split('\n'), ['character special file 1:3', 'block special file 8:1', 'fifo 0:0']);
  // The mount is not nodev: the device node works. The kernel opens it without asking the server.
  assert.equal((await sh(`head -c 0 ${q(at('special/null'))} && echo opened`)).stdout, 'opened\n');
});

test('xattrs: listing, text and binary values, missing names', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const file = path.join(mountpoint, 'xattrs');
  const { stdout } = await run('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'hex', file]);
  const values = new Map(
    stdout
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => line.split('=') as [string, string]),
  );
  assert.deepEqual(
    values,
    new Map([
      ['user.text', `0x${Buffer.from('value').toString('hex')}`],
      ['user.binary', `0x${BINARY_XATTR.toString('hex')}`],
      ['user.empty', '0x'],
      ['security.capability', `0x${CAPABILITY.toString('hex')}`],
    ]),
  );
  const { stdout: text } = await run('getfattr', ['--absolute-names', '--only-values', '-n', 'user.text', file]);
  assert.equal(text, 'value');

  const missing = await run('getfattr', ['-n', 'user.missing', file], { allowFail: true });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such attribute/);
  const none = await run('getfattr', ['--absolute-names', '-d', '-m', '-', path.join(mountpoint, 'hello.txt')]);
  assert.equal(none.stdout, '');
});

test('every kind of write fails with EROFS', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const at = (p: string) => q(path.join(mountpoint, p));
  const writes = [
    `touch ${at('new')}`,
    `echo x > ${at('hello.txt')}`,
    `echo x >> ${at('hello.txt')}`,
    `truncate -s 0 ${at('hello.txt')}`,
    `mkdir ${at('newdir')}`,
    `rm ${at('hello.txt')}`,
    `rmdir ${at('dir/nested')}`,
    `mv ${at('hello.txt')} ${at('moved')}`,
    `ln ${at('hello.txt')} ${at('link')}`,
    `ln -s target ${at('symlink')}`,
    `chmod 777 ${at('hello.txt')}`,
    `chown 1:1 ${at('hello.txt')}`,
    `touch -d @0 ${at('hello.txt')}`,
    `mknod ${at('node')} p`,
    `setfattr -n user.new -v 1 ${at('hello.txt')}`,
    `setfattr -x user.text ${at('xattrs')}`,
  ];
  for (const write of writes) {
    const result = await sh(write, true);
    assert.notEqual(result.code, 0, write);
    assert.match(result.stderr, /Read-only file system/, write);
  }
  assert.equal((await run('cat', [path.join(mountpoint, 'hello.txt')])).stdout, 'hello, world\n');
});

test('the kernel keeps pages, names and misses: content is read from the server once', async (t) => {
  const fs = buildTree();
  const lookups = new Map<string, number>();
  fs.beforeLookup = async (name) => void lookups.set(name, (lookups.get(name) ?? 0) + 1);
  const { mountpoint } = await mountForTest(t, fs);
  const at = (p: string) => path.join(mountpoint, p);
  // The first read may fetch a few pages twice (readahead racing the reader); later opens must
  // fetch nothing at all.
  let afterFirstPass = 0;
  for (let i = 0; i < 3; i++) {
    assert.equal((await run('sha256sum', [at('big.bin')])).stdout.split(' ')[0], sha256(BIG));
    assert.equal((await run('cat', [at('hard/a'), at('hard/b')])).stdout, 'shared content\n'.repeat(2));
    assert.equal((await run('stat', [at('missing')], { allowFail: true })).code, 1);
    if (i === 0) afterFirstPass = fs.bytesRead.get(fs.attrOf('big.bin').ino) ?? 0;
  }
  assert.ok(afterFirstPass >= BIG.length, 'the whole file was read once');
  assert.equal(fs.bytesRead.get(fs.attrOf('big.bin').ino), afterFirstPass, 'FOPEN_KEEP_CACHE: later opens use the page cache');
  assert.equal(fs.bytesRead.get(fs.attrOf('hard/a').ino), 15, 'two names, one inode, one cache');
  assert.equal(lookups.get('missing'), 1, 'the miss is cached (negative entry)');
  assert.equal(lookups.get('big.bin'), 1, 'the name is cached');
});

/**
 * `fs` without open/release (reads then come with handle 0, which the tree checks against the
 * handle its open would have made), plus `extra`; its methods still run on the tree itself.
 */
function openless(fs: MemoryFilesystem, extra: Partial<ReadOnlyFilesystem> = {}): ReadOnlyFilesystem {
  return new Proxy(fs, {
    get: (target, name) => {
      if (name in extra) return extra[name as keyof ReadOnlyFilesystem];
      if (name === 'open' || name === 'release') return undefined;
      if (name === 'read') {
        return (ino: bigint, handle: bigint, offset: number, buffer: Buffer) => {
          assert.equal(handle, 0n);
          return target.read(ino, ino * 10n, offset, buffer);
        };
      }
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

test('a filesystem without open gets no OPEN or RELEASE after the first, and keeps its pages', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, openless(fs));
  const at = (p: string) => path.join(mountpoint, p);
  for (let i = 0; i < 3; i++) {
    assert.equal((await run('sha256sum', [at('big.bin')])).stdout.split(' ')[0], sha256(BIG));
    assert.equal((await run('cat', [at('hello.txt'), at('dir/nested/deep.txt')])).stdout, 'hello, world\ndeep\n');
  }
  assert.equal(fs.calls.get('open'), undefined);
  assert.equal(fs.calls.get('release'), undefined);
  assert.ok((fs.bytesRead.get(fs.attrOf('big.bin').ino) ?? 0) < 2 * BIG.length, 'later opens use the page cache');
  const write = await sh(`echo x > ${q(at('hello.txt'))}`, true);
  assert.match(write.stderr, /Read-only file system/);
});

/** `fs` with busybox as `busybox`, and backing files in a fresh directory for `names` of it. */
async function withBackingFiles(t: TestContext, fs: MemoryFilesystem, names: readonly string[]): Promise<ReadOnlyFilesystem> {
  fs.file('busybox', await readFile(BUSYBOX), { perm: 0o755 });
  const directory = await mkdtemp(path.join(tmpdir(), 'fuse-backing-'));
  stopAfter(t, { stop: () => rm(directory, { recursive: true }) });
  const backing = new Map<bigint, string>();
  for (const name of ['busybox', ...names]) {
    const file = path.join(directory, String(backing.size));
    await writeFile(file, fs.contentOf(name));
    backing.set(fs.attrOf(name).ino, file);
  }
  return openless(fs, { backingFile: async (ino) => backing.get(ino) ?? null });
}

/** Waits until one of `lines` (see captureLog) matches `pattern`: the reader's lines reach the log a moment after its answers. */
function untilLogged(lines: readonly string[], pattern: RegExp): Promise<void> {
  return pollUntil(async () => lines.some((line) => pattern.test(line)), 5000, () => lines.join('\n'));
}

/** Log lines from now until the test ends, with debug ones. */
function captureLog(t: TestContext): string[] {
  const lines: string[] = [];
  const reporter = { log: (entry: { args: unknown[] }) => void lines.push(entry.args.join(' ')) };
  log.addReporter(reporter);
  const level = log.level;
  log.level = 4;
  t.after(() => {
    log.removeReporter(reporter);
    log.level = level;
  });
  return lines;
}

test('passthrough: files with backing files are read, mapped and run by the kernel from them, without a READ', async (t) => {
  const lines = captureLog(t);
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, await withBackingFiles(t, fs, ['big.bin', 'hard/a']));
  const at = (p: string) => path.join(mountpoint, p);
  assert.equal((await run('sha256sum', [at('big.bin')])).stdout.split(' ')[0], sha256(BIG));
  assert.equal((await run('cat', [at('hard/b')])).stdout, 'shared content\n', 'through another name of the inode');
  // Through sh: spawning it from here would block this process, which serves the mount, until the exec is done.
  assert.equal((await sh(`${q(at('busybox'))} echo run from the mount`)).stdout, 'run from the mount\n', 'exec maps the file');
  assert.equal((await run('cat', [at('hello.txt')])).stdout, 'hello, world\n', 'a file without a backing file');
  for (const name of ['big.bin', 'hard/a', 'busybox']) assert.equal(fs.bytesRead.get(fs.attrOf(name).ino), undefined, `${name} was not read through the server`);
  assert.equal(fs.bytesRead.get(fs.attrOf('hello.txt').ino), 13);
  // Each close sends RELEASE, which needs no more than its reply here.
  await untilLogged(lines, /^fuse: RELEASE on node \d+: answered by the reader$/);
  assert.ok(!lines.some((line) => /^fuse: RELEASE on node \d+: answered in/.test(line)));
  // Opened again: the reader answers with the backing file registered the first time.
  const big = fs.attrOf('big.bin').ino;
  for (let i = 0; i < 2; i++) assert.equal((await run('sha256sum', [at('big.bin')])).stdout.split(' ')[0], sha256(BIG));
  const fromReader = () => lines.filter((line) => new RegExp(`^fuse: OPEN on node ${big}: passthrough to backing file \\d+, answered by the reader$`).test(line)).length;
  await pollUntil(async () => fromReader() >= 2, 5000, () => lines.join('\n'));
  assert.equal(lines.filter((line) => line.startsWith(`fuse: OPEN on node ${big}: answered in`)).length, 1, 'the first open only');
  // Forgotten by the kernel, the inode's backing file goes; found again, it is registered anew.
  await sh('sync; echo 2 > /proc/sys/vm/drop_caches');
  await pollUntil(async () => fs.forgotten.includes(big), 10_000, () => 'big.bin was not forgotten');
  for (let i = 0; i < 2; i++) assert.equal((await run('sha256sum', [at('big.bin')])).stdout.split(' ')[0], sha256(BIG));
  assert.equal(lines.filter((line) => line.startsWith(`fuse: OPEN on node ${big}: answered in`)).length, 2);
  assert.equal(fs.bytesRead.get(big), undefined);
});

test('passthrough: a directory\'s table brings the backing files of its cached files, so the reader answers even their first OPEN', async (t) => {
  const lines = captureLog(t);
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('d');
  fs.file('d/cached.txt', 'cached\n');
  fs.file('d/not-cached.txt', 'not cached\n');
  const { mountpoint } = await mountForTest(t, await withBackingFiles(t, fs, ['d/cached.txt']));
  await run('stat', [path.join(mountpoint, 'd')]);
  const cached = fs.attrOf('d/cached.txt').ino;
  await untilLogged(lines, new RegExp(`^fuse: node ${cached} has backing file \\d+, registered ahead$`));
  assert.equal((await run('cat', [path.join(mountpoint, 'd/cached.txt'), path.join(mountpoint, 'd/not-cached.txt')])).stdout, 'cached\nnot cached\n');
  await untilLogged(lines, new RegExp(`^fuse: OPEN on node ${cached}: passthrough to backing file \\d+, answered by the reader$`));
  assert.ok(!lines.some((line) => line.startsWith(`fuse: OPEN on node ${cached}: answered in`)), 'its first OPEN did not reach the main thread');
  assert.equal(fs.bytesRead.get(cached), undefined);
  assert.equal(fs.bytesRead.get(fs.attrOf('d/not-cached.txt').ino), 11, 'one without a backing file is read through the server');
});

/** Mounts `served` with a PATH holding only `programs` while the mount starts. */
async function mountWithOnly(t: TestContext, served: ReadOnlyFilesystem, programs: string[]): Promise<string> {
  const bin = await mkdtemp(path.join(tmpdir(), 'fuse-path-'));
  stopAfter(t, { stop: () => rm(bin, { recursive: true }) });
  for (const program of programs) await symlink((await run('sh', ['-c', `command -v ${program}`])).stdout.trim(), path.join(bin, program));
  const pathBefore = process.env.PATH;
  process.env.PATH = bin;
  try {
    return (await mountForTest(t, served)).mountpoint;
  } finally {
    process.env.PATH = pathBefore;
  }
}

test('passthrough: without perl to register backing files, every file is read through the server', async (t) => {
  const fs = buildTree();
  const mountpoint = await mountWithOnly(t, await withBackingFiles(t, fs, ['big.bin']), ['mount', 'umount']);
  assert.equal((await run('sha256sum', [path.join(mountpoint, 'big.bin')])).stdout.split(' ')[0], sha256(BIG));
  assert.equal((await sh(`${q(path.join(mountpoint, 'busybox'))} echo ran`)).stdout, 'ran\n');
  assert.ok((fs.bytesRead.get(fs.attrOf('big.bin').ino) ?? 0) >= BIG.length);
});

test('the connection\'s Perl helper mounts it: no mount program is needed where perl runs', async (t) => {
  const mountpoint = await mountWithOnly(t, await withBackingFiles(t, buildTree(), ['big.bin']), ['perl']);
  assert.equal((await run('sha256sum', [path.join(mountpoint, 'big.bin')])).stdout.split(' ')[0], sha256(BIG));
  const mount = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((line) => line.split(' ')[4] === mountpoint);
  assert.match(mount ?? '', / ro[, ].* - fuse\.cvmfs-graphdriver \S+ .*allow_other/, 'read-only, its subtype and options as the mount program sets them');
});

test('passthrough makes the mount a level of stacking: an overlay on it takes no overlay on top, unless it is turned off', async (t) => {
  for (const passthrough of [true, false]) {
    const fs = buildTree();
    const { mountpoint } = await mountForTest(t, await withBackingFiles(t, fs, ['big.bin']), { passthrough });
    const dir = await mkdtemp(path.join(tmpdir(), 'fuse-stack-'));
    stopAfter(t, {
      async stop() {
        await sh(`umount ${q(path.join(dir, 'outer'))} 2>/dev/null; umount ${q(path.join(dir, 'inner'))}`, true);
        await rm(dir, { recursive: true });
      },
    });
    await sh(`cd ${q(dir)} && mkdir inner outer upper work && mount -t overlay overlay -o lowerdir=${q(path.join(mountpoint, 'dir'))},upperdir=upper,workdir=work inner`);
    const outer = await sh(`cd ${q(dir)} && mount -t overlay overlay -o ro,lowerdir=inner:${q(path.join(mountpoint, 'hard'))} outer`, true);
    if (passthrough) assert.notEqual(outer.code, 0, 'three levels of stacking');
    else assert.equal(outer.code, 0, outer.stderr);
    assert.equal((await run('sha256sum', [path.join(mountpoint, 'big.bin')])).stdout.split(' ')[0], sha256(BIG));
    assert.equal(fs.bytesRead.get(fs.attrOf('big.bin').ino) !== undefined, !passthrough, 'read through the server only without passthrough');
  }
});

test('inodes the kernel evicts are forgotten, and found again on the next lookup', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  const names = Array.from({ length: 100 }, (_, i) => `many/f${String(i).padStart(5, '0')}`);
  await run('stat', ['-c', '%i', ...names.map((name) => path.join(mountpoint, name))]);
  assert.equal(fs.forgotten.length, 0);

  // Dropping the dentry and inode caches makes the kernel FORGET every unused inode.
  await sh('sync; echo 2 > /proc/sys/vm/drop_caches');
  const expected = names.map((name) => fs.attrOf(name).ino);
  const deadline = Date.now() + 10_000;
  while (!expected.every((ino) => fs.forgotten.includes(ino)) && Date.now() < deadline) await sleep(50);
  assert.ok(expected.every((ino) => fs.forgotten.includes(ino)), 'every evicted inode was forgotten');
  assert.ok(!fs.forgotten.includes(fs.rootIno), 'never the root');

  const { stdout } = await run('cat', names.slice(0, 3).map((name) => path.join(mountpoint, name)));
  assert.equal(stdout, 'file 0\nfile 1\nfile 2\n');
});

test('the device reader answers lookups in a busy directory from its table, as the filesystem would', async (t) => {
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('d');
  const count = 100;
  for (let i = 0; i < count; i++) fs.file(`d/f${i}`, `file ${i}\n`, { uid: i, perm: 0o600 + (i % 8) });
  fs.dir('d/sub');
  fs.file('d/sub/inner', 'inner\n');
  const asked: string[] = [];
  fs.beforeLookup = async (name) => void asked.push(name);
  const { mountpoint } = await mountForTest(t, fs);
  const names = Array.from({ length: count }, (_, i) => `d/f${i}`);
  const { stdout } = await run('stat', ['-c', '%i %s %a %u', ...names.map((name) => path.join(mountpoint, name))]);
  assert.deepEqual(
    stdout.trim().split('\n'),
    names.map((name) => {
      const attr = fs.attrOf(name);
      return `${attr.ino} ${attr.size} ${(attr.mode & 0o7777).toString(8)} ${attr.uid}`;
    }),
  );
  // Finding d may be enough for its table, so at most the lookups the reader read before the
  // table arrived reach the filesystem.
  assert.equal(asked[0], 'd');
  assert.ok(asked.length < 20, `${asked.length} of ${count + 1} lookups reached the filesystem`);
  const askedBefore = asked.length;

  // Names not in the table are not found; directories in it lead on.
  const missing = await run('stat', [path.join(mountpoint, 'd/nothing'), path.join(mountpoint, 'd/f1x')], { allowFail: true });
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.match(/No such file or directory/g)?.length, 2);
  assert.equal((await run('cat', [path.join(mountpoint, 'd/sub/inner'), path.join(mountpoint, 'd/f7')])).stdout, 'inner\nfile 7\n');
  // d/sub's own table may arrive before its lookup is read; nothing in d reaches the filesystem.
  assert.ok(asked.slice(askedBefore).every((name) => name === 'inner'), `asked: ${asked.slice(askedBefore).join(', ')}`);
});

test('the device reader answers listings, symlink targets, FLUSH and OPENDIR of a directory with a table, as the filesystem would', async (t) => {
  const lines = captureLog(t);
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('d');
  // More than one READDIR page of 32 KiB, with and without attributes.
  for (let i = 0; i < 300; i++) fs.file(`d/a-file-with-a-name-long-enough-to-fill-pages-${i}`, `${i}\n`);
  fs.dir('d/sub');
  fs.symlink('d/link', 'a-file-with-a-name-long-enough-to-fill-pages-7');
  fs.device('d/null', 'char', 1, 3);
  const { mountpoint } = await mountForTest(t, fs);
  const d = path.join(mountpoint, 'd');
  // Lookups until the reader answers one from the table (303 names: built after 4 lookups).
  let looked = 0;
  const fromTable = () => lines.some((line) => /^fuse: LOOKUP ".*" in node \d+: found, from its table$/.test(line));
  await pollUntil(async () => (await run('stat', [path.join(d, `a-file-with-a-name-long-enough-to-fill-pages-${looked++}`)]), fromTable()), 5000, () => lines.join('\n'));

  // find reads d_ino and d_type from the listing itself.
  const expected = (await fs.readdir(fs.attrOf('d').ino)).filter(({ name }) => name !== '.' && name !== '..');
  const typeLetter = (mode: number) => ({ 0o040000: 'd', 0o100000: 'f', 0o120000: 'l', 0o020000: 'c' })[mode & FILE_TYPE.MASK];
  const listed = await run('find', [d, '-mindepth', '1', '-maxdepth', '1', '-printf', '%i %y %f\n']);
  assert.deepEqual(listed.stdout.trim().split('\n'), expected.map(({ name, attr }) => `${attr.ino} ${typeLetter(attr.mode)} ${name}`));
  assert.equal((await run('readlink', [path.join(d, 'link')])).stdout, 'a-file-with-a-name-long-enough-to-fill-pages-7\n');
  assert.equal((await run('cat', [path.join(d, 'link')])).stdout, '7\n');
  assert.equal(fs.calls.get('readlink') ?? 0, 0, 'no readlink reached the filesystem');
  // Building a table of this filesystem calls its readdir: the log says what reached the main thread.
  await untilLogged(lines, /^fuse: READDIR(PLUS)? on node \d+: \d+ bytes, from its table$/);
  await untilLogged(lines, /^fuse: OPENDIR on node \d+: not supported, answered by the reader$/);
  await untilLogged(lines, /^fuse: FLUSH on node \d+: not supported, answered by the reader$/);
  assert.ok(!lines.some((line) => /^fuse: (READDIR|READDIRPLUS|READLINK|OPENDIR|FLUSH) on node \d+: (answered in|errno)/.test(line)), 'none reached the main thread');
});

test('the device reader answers xattr queries on table entries without any, STATFS and IOCTL, as the session would', async (t) => {
  const lines = captureLog(t);
  const fs = new TabledMemoryFilesystem(500n);
  fs.dir('d');
  fs.file('d/plain', 'plain\n');
  fs.file('d/tagged', 'tagged\n');
  fs.xattr('d/tagged', 'user.tag', 'yes');
  const { mountpoint } = await mountForTest(t, fs);
  const at = (name: string) => path.join(mountpoint, name);
  // Finding d sends its table to the reader.
  await run('stat', [at('d/plain'), at('d/tagged')]);

  assert.equal((await run('getfattr', ['-d', '-m', '-', at('d/plain')])).stdout, '');
  const missing = await run('getfattr', ['-n', 'user.tag', at('d/plain')], { allowFail: true });
  assert.match(missing.stderr, /No such attribute/);
  assert.equal(fs.calls.get('getxattr') ?? 0, 0, 'no query on d/plain reached the filesystem');
  assert.equal(fs.calls.get('listxattr') ?? 0, 0);
  assert.equal((await run('getfattr', ['--only-values', '-n', 'user.tag', at('d/tagged')])).stdout, 'yes');
  assert.ok((fs.calls.get('getxattr') ?? 0) > 0, 'd/tagged has one, so its queries did');

  // The reader's lines reach the log through the main thread, a moment after its answers.
  const logged = (count: () => number, atLeast: number) => pollUntil(async () => count() >= atLeast, 5000, () => lines.join('\n'));
  assert.equal((await run('stat', ['-f', '-c', '%S %l', mountpoint])).stdout, '4096 255\n');
  await logged(() => lines.filter((line) => line === 'fuse: STATFS on node 1: answered by the reader').length, 1);
  assert.ok(!lines.some((line) => line.startsWith('fuse: STATFS on node 1: answered in')));

  // Asked twice, as the kernel does not remember that ioctls are unsupported.
  for (let i = 0; i < 2; i++) assert.match((await run('lsattr', [at('d/plain')], { allowFail: true })).stderr, /Operation not supported/);
  const ioctls = () => lines.filter((line) => /^fuse: IOCTL on node \d+: not supported, answered by the reader$/.test(line)).length;
  await logged(ioctls, 2);
  assert.equal(ioctls(), 2);
  assert.ok(!lines.some((line) => line.startsWith('fuse: opcode 39')));
});

test('a table the reader drops lets go of the inodes only it held, and lookups there reach the filesystem again', async (t) => {
  const fs = new TabledMemoryFilesystem(500n);
  for (const dir of ['a', 'b']) {
    fs.dir(dir);
    for (let i = 0; i < 100; i++) fs.file(`${dir}/f${i}`, `${dir} ${i}\n`);
  }
  const { mountpoint } = await mountForTest(t, fs, { maxTableNames: 150 });
  const looked = Array.from({ length: 10 }, (_, i) => `a/f${i}`);
  await run('stat', looked.map((name) => path.join(mountpoint, name)));
  assert.deepEqual(fs.forgotten, []);
  // b's table pushes a's out: a's names nobody looked up are let go, the ten the kernel holds
  // (answered by the reader, or here) are not.
  // (The reader takes a table with the next request it reads, so a few lookups follow.)
  await run('stat', Array.from({ length: 10 }, (_, i) => path.join(mountpoint, `b/f${i}`)));
  const deadline = Date.now() + 5000;
  while (fs.forgotten.length < 90 && Date.now() < deadline) await sleep(20);
  const unlooked = Array.from({ length: 90 }, (_, i) => fs.attrOf(`a/f${i + 10}`).ino);
  assert.deepEqual(fs.forgotten.toSorted(), unlooked.toSorted());
  const lookups = fs.calls.get('lookup');
  assert.equal((await run('cat', [path.join(mountpoint, 'a/f50')])).stdout, 'a 50\n');
  assert.equal(fs.calls.get('lookup'), lookups! + 1);
  assert.equal((await run('cat', looked.map((name) => path.join(mountpoint, name)))).stdout, looked.map((_, i) => `a ${i}\n`).join(''));
});

test('concurrent readers are served in parallel and all get the right bytes', async (t) => {
  const fs = buildTree();
  const { mountpoint } = await mountForTest(t, fs);
  // Eight readers of one uncached file, plus 200 small files read by 20 processes at once.
  const big = Array.from({ length: 8 }, () => run('sha256sum', [path.join(mountpoint, 'big.bin')]));
  const small = Array.from({ length: 20 }, (_, reader) => {
    const files = Array.from({ length: 10 }, (_, i) => path.join(mountpoint, 'many', `f${String(reader * 10 + i).padStart(5, '0')}`));
    return run('cat', files);
  });
  for (const result of await Promise.all(big)) assert.equal(result.stdout.split(' ')[0], sha256(BIG));
  const texts = await Promise.all(small);
  texts.forEach((result, reader) => {
    const expected = Array.from({ length: 10 }, (_, i) => `file ${reader * 10 + i}\n`).join('');
    assert.equal(result.stdout, expected);
  });
});

test('a stalled request holds up no other, and a killed caller gets it interrupted', async (t) => {
  const fs = buildTree();
  const release = Promise.withResolvers<void>();
  let stalled = 0;
  fs.beforeLookup = async (name) => {
    if (name !== 'stall') return;
    stalled++;
    await release.promise;
  };
  const { mountpoint } = await mountForTest(t, fs);
  const caller = spawn('stat', [path.join(mountpoint, 'stall')], { stdio: 'ignore' });
  const callerExit = once(caller, 'exit');
  stopAfter(t, {
    async stop() {
      release.resolve();
      caller.kill('SIGKILL');
    },
  });
  while (stalled === 0) await sleep(20);

  // Same directory as the stalled lookup (PARALLEL_DIROPS), other files, a listing, a big read.
  const started = performance.now();
  assert.equal((await run('cat', [path.join(mountpoint, 'hello.txt')])).stdout, 'hello, world\n');
  assert.equal((await run('stat', ['-c', '%s', path.join(mountpoint, 'suid')])).stdout, '1\n');
  assert.equal((await sh(`ls ${q(path.join(mountpoint, 'many'))} | wc -l`)).stdout.trim(), String(MANY));
  assert.equal((await run('sha256sum', [path.join(mountpoint, 'big.bin')])).stdout.split(' ')[0], sha256(BIG));
  assert.ok(performance.now() - started < 10_000, 'other requests were answered while one stalled');
  assert.equal(caller.exitCode, null, 'the stalled caller is still waiting');

  // SIGKILL makes the kernel send INTERRUPT; the server answers the stalled request with EINTR
  // (without that, the killed process would wait in the kernel for the lookup to finish).
  caller.kill('SIGKILL');
  const exited = await Promise.race([callerExit.then(() => true), sleep(5000, false)]);
  assert.ok(exited, 'the killed caller left although the lookup never finished');
  // The late answer to the interrupted request is dropped without harm.
  const errors = t.mock.method(log, 'error');
  release.resolve();
  await sleep(100);
  assert.equal(errors.mock.callCount(), 0);
  assert.equal((await run('cat', [path.join(mountpoint, 'hello.txt')])).stdout, 'hello, world\n');
});

test('an unexpected error in a handler becomes EIO and one log line', async (t) => {
  const fs = buildTree();
  const failing = fs.attrOf('dir/nested/deep.txt').ino;
  fs.beforeRead = async (ino) => {
    if (ino === failing) throw new Error('the disk is on fire');
  };
  const { mountpoint } = await mountForTest(t, fs);
  const errors = t.mock.method(log, 'error', () => {});
  const result = await run('cat', [path.join(mountpoint, 'dir/nested/deep.txt')], { allowFail: true });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /Input\/output error/);
  assert.ok(errors.mock.callCount() >= 1);
  for (const call of errors.mock.calls) assert.match(String(call.arguments[0]), /^fuse: READ on node \d+ failed: the disk is on fire$/);
  assert.equal((await run('cat', [path.join(mountpoint, 'hello.txt')])).stdout, 'hello, world\n');
});

test('unmounting with a file open detaches the mount and keeps serving that file', async (t) => {
  const fs = buildTree();
  const server = await mountForTest(t, fs);
  // Holds hello.txt open, waits for a line on stdin, then reads through the open descriptor.
  const holder = spawn('sh', ['-c', `exec 3< ${q(path.join(server.mountpoint, 'hello.txt'))}; echo open; read line; cat <&3`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  stopAfter(t, { stop: async () => void holder.kill('SIGKILL') });
  const output: Buffer[] = [];
  holder.stdout.on('data', (chunk: Buffer) => output.push(chunk));
  while (!Buffer.concat(output).toString().includes('open\n')) await sleep(20);

  await server.unmount();
  assert.equal(await isMounted(server.mountpoint), false, 'the mountpoint is free');
  const closedEarly = await Promise.race([server.closed.then(() => true), sleep(300, false)]);
  assert.equal(closedEarly, false, 'the session lives while the file is open');

  holder.stdin.end('go\n');
  await once(holder, 'exit');
  assert.equal(holder.exitCode, 0);
  assert.equal(Buffer.concat(output).toString(), 'open\nhello, world\n');
  const closed = await Promise.race([server.closed.then(() => true), sleep(5000, false)]);
  assert.ok(closed, 'the session ends once the last file is closed');
});

test('a mount that fails rejects with the reason and leaves no reader thread behind', async (t) => {
  // In a process of its own, which a reader thread left running would keep from exiting.
  const dir = await mkdtemp(path.join(tmpdir(), 'fuse-failed-mount-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'mount.ts');
  await writeFile(script, `
    import { serveFilesystem } from ${JSON.stringify(new URL('../../src/core/fuse/server.ts', import.meta.url).href)};
    import { MemoryFilesystem } from ${JSON.stringify(new URL('./memory-fs.ts', import.meta.url).href)};
    await serveFilesystem(new MemoryFilesystem(1n), '/nonexistent/mountpoint').catch((error: Error) => console.log(error.message));
  `);
  const result = await run('timeout', ['20', process.execPath, script], { allowFail: true });
  assert.equal(result.code, 0, 'the process exited by itself');
  assert.match(result.stdout, /\/nonexistent\/mountpoint: mount point does not exist/);
});
