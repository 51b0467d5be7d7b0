// Shared pieces of the overlay and driver tests: temp dirs that unmount and remove themselves,
// layer tars built with the project's TarWriter, and a canonical description of a directory
// tree (stat fields, xattrs, hardlink groups) so two trees can be compared field by field.

import { run } from '../../src/core/fs/run.ts';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { TestContext } from 'node:test';
import { tarHeader, type TarHeader } from '../../src/core/tar/entry.ts';
import { readTar } from '../../src/core/tar/reader.ts';
import { TarWriter } from '../../src/core/tar/writer.ts';
import { deviceNumbers, walkTree } from '../../src/core/fs/walk.ts';
import { readTreeXattrs } from '../../src/core/fs/xattr.ts';
import { mountsBelow, unmount } from '../../src/core/fs/mounts.ts';

/** A temp dir removed after the test, after unmounting anything still mounted below it. */
export async function tempDir(t: TestContext, prefix = 'overlay-test-'): Promise<string> {
  const dir = await mkdtempReal(prefix);
  t.after(() => removeDir(dir));
  return dir;
}

async function mkdtempReal(prefix: string): Promise<string> {
  // realpath: mount points in /proc/self/mountinfo are canonical paths.
  return fs.realpath(await fs.mkdtemp(path.join(tmpdir(), prefix)));
}

export async function removeDir(dir: string): Promise<void> {
  for (const mountPoint of await mountsBelow(dir)) await unmount(mountPoint).catch(() => run('umount', ['-l', mountPoint]));
  await fs.rm(dir, { recursive: true, force: true });
}

export { run };

/** A tar header with defaults for what a test does not care about. */
export function header(fields: Partial<TarHeader> & Pick<TarHeader, 'path'>): TarHeader {
  return tarHeader({ mtime: 1_500_000_000, ...fields });
}

/** A header-only archive member (whiteouts, devices, fifos). */
export function entry(fields: Partial<TarHeader> & Pick<TarHeader, 'path'>): [TarHeader] {
  return [header(fields)];
}

export function file(name: string, content: string | Buffer, fields: Partial<TarHeader> = {}): [TarHeader, Buffer] {
  const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return [header({ path: name, size: data.length, ...fields }), data];
}

export function dir(name: string, fields: Partial<TarHeader> = {}): [TarHeader] {
  return [header({ path: name.endsWith('/') ? name : `${name}/`, type: 'directory', mode: 0o755, ...fields })];
}

export function symlink(name: string, target: string, fields: Partial<TarHeader> = {}): [TarHeader] {
  return [header({ path: name, type: 'symlink', mode: 0o777, linkname: target, ...fields })];
}

export function hardlink(name: string, target: string, fields: Partial<TarHeader> = {}): [TarHeader] {
  return [header({ path: name, type: 'hardlink', linkname: target, ...fields })];
}

/** A whole archive as one buffer. */
export async function makeTar(entries: ReadonlyArray<readonly [TarHeader, Buffer?]>): Promise<Buffer> {
  const out = new PassThrough();
  const pieces: Buffer[] = [];
  out.on('data', (piece: Buffer) => pieces.push(piece));
  const writer = new TarWriter(out);
  for (const [header, body] of entries) await writer.add(header, body);
  await writer.finish();
  return Buffer.concat(pieces);
}

/** An archive as a stream of small chunks, so entries straddle chunk boundaries. */
export async function* chunks(data: Buffer, size = 700): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

export interface ArchiveEntry extends TarHeader {
  data: Buffer;
}

export async function readArchive(source: AsyncIterable<Buffer> | Buffer): Promise<ArchiveEntry[]> {
  const input = Buffer.isBuffer(source) ? chunks(source, 64 * 1024) : source;
  const entries: ArchiveEntry[] = [];
  for await (const { body, ...header } of readTar(input)) {
    const pieces: Buffer[] = [];
    for await (const piece of body) pieces.push(Buffer.from(piece));
    entries.push({ ...header, data: Buffer.concat(pieces) });
  }
  return entries;
}

/** Extended attributes of one path (not following a symlink), read back with getfattr. */
export async function xattrsOf(target: string): Promise<Map<string, Buffer>> {
  const { stdout } = await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', target]);
  const attrs = new Map<string, Buffer>();
  for (const line of stdout.toString('utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    attrs.set(line.slice(0, eq), Buffer.from(line.slice(eq + 3), 'hex'));
  }
  return attrs;
}

/** A valid VFS_CAP_REVISION_2 blob granting cap_net_bind_service (bit 10), effective. */
export const NET_BIND_CAPABILITY = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

export interface TreeRecord {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  sha256?: string;
  target?: string;
  device?: string;
  xattrs: string;
  /** Other names of the same inode, for hardlinks. */
  links?: string;
}

function typeOf(stat: import('node:fs').Stats): string {
  if (stat.isDirectory()) return 'dir';
  if (stat.isFile()) return 'file';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isCharacterDevice()) return 'char';
  if (stat.isBlockDevice()) return 'block';
  if (stat.isFIFO()) return 'fifo';
  return 'other';
}

/**
 * Every path below root (not root itself) with what a layer must reproduce. Directory sizes are
 * left out: they depend on the filesystem's history, not on the layer's content.
 */
export async function describeTree(root: string, options: { xattrFilter?: (name: string) => boolean } = {}): Promise<Map<string, TreeRecord>> {
  const keep = options.xattrFilter ?? (() => true);
  const xattrs = await readTreeXattrs(root);
  const records = new Map<string, TreeRecord>();
  const byInode = new Map<number, string[]>();
  for await (const { relPath, stat } of walkTree(root)) {
    if (relPath === '') continue;
    const type = typeOf(stat);
    const record: TreeRecord = {
      type,
      mode: (stat.mode & 0o7777).toString(8),
      uid: stat.uid,
      gid: stat.gid,
      mtime: Math.floor(stat.mtimeMs / 1000),
      size: type === 'dir' ? 0 : stat.size,
      xattrs: [...(xattrs.get(relPath) ?? [])]
        .filter(([name]) => keep(name))
        .map(([name, value]) => `${name}=${value.toString('hex')}`)
        .sort()
        .join(','),
    };
    const abs = path.join(root, relPath);
    if (type === 'file') record.sha256 = createHash('sha256').update(await fs.readFile(abs)).digest('hex');
    if (type === 'symlink') record.target = await fs.readlink(abs);
    if (type === 'char' || type === 'block') {
      const { major, minor } = deviceNumbers(stat.rdev);
      record.device = `${major}:${minor}`;
    }
    if (type !== 'dir' && stat.nlink > 1) {
      const group = byInode.get(stat.ino) ?? [];
      group.push(relPath);
      byInode.set(stat.ino, group);
    }
    records.set(relPath, record);
  }
  for (const group of byInode.values()) {
    // A group of one links outside the tree (the kernel shares one whiteout inode per mount).
    if (group.length < 2) continue;
    for (const name of group) records.get(name)!.links = group.join(' ');
  }
  return records;
}

export async function exists(target: string): Promise<boolean> {
  return fs.lstat(target).then(() => true, () => false);
}
