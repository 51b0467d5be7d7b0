import fs from 'node:fs';
import path from 'node:path';
import type { TarEntry } from '../tar/entry.ts';
import { readTar } from '../tar/reader.ts';
import { cleanMemberName, LayerEscapeError, resolveDirInRoot } from '../fs/confined-path.ts';
import { makeSpecialFiles, type SpecialFile } from '../fs/special-files.ts';
import { writeTreeXattrs, type XattrMap } from '../fs/xattr.ts';

// Unpacks a layer tar into a directory the way Docker's overlay2 driver does (pkg/archive
// Unpack with the overlay whiteout converter): AUFS whiteouts become overlay whiteouts,
// owners, modes, times and xattrs are kept, and nothing lands outside the directory.

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';

interface Attributes {
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
}

/** Work that needs a helper process, done once for the whole layer after the stream ends. */
interface DeferredWork {
  specials: Array<SpecialFile & Attributes>;
  /** Hardlinks whose original is a deferred special file. */
  links: Array<{ relPath: string; targetRel: string }>;
  xattrs: Map<string, XattrMap>;
  dirTimes: Array<{ relPath: string; mtime: number }>;
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body);
}

function addXattr(work: DeferredWork, relPath: string, name: string, value: Buffer): void {
  let attrs = work.xattrs.get(relPath);
  if (!attrs) work.xattrs.set(relPath, (attrs = new Map()));
  attrs.set(name, value);
}

function checkSymlinkTarget(root: string, relPath: string, target: string): void {
  // Docker's rule: the target joined onto the link's directory (an absolute target too, as it is
  // read inside the container's root) must stay inside the layer.
  const resolved = path.join(root, path.dirname(relPath), target);
  if (resolved !== root && !resolved.startsWith(`${root}/`)) {
    throw new LayerEscapeError(`symlink ${relPath} -> ${target} points outside the layer`);
  }
}

// File system calls here are synchronous on purpose: each takes microseconds on a local disk,
// and a layer has tens of thousands of them, so a round trip through libuv's thread pool per
// call would cost more than the call. Only the tar stream itself is awaited.

function setAttributes(abs: string, attrs: Attributes, isSymlink: boolean): void {
  fs.lchownSync(abs, attrs.uid, attrs.gid);
  // chmod after chown: chown clears setuid/setgid bits.
  if (!isSymlink) fs.chmodSync(abs, attrs.mode);
  fs.lutimesSync(abs, attrs.mtime, attrs.mtime);
}

async function writeRegularFile(abs: string, entry: TarEntry): Promise<void> {
  const fd = fs.openSync(abs, 'w', 0o600);
  try {
    for await (const chunk of entry.body) fs.writeSync(fd, chunk);
    fs.fchownSync(fd, entry.uid, entry.gid);
    fs.fchmodSync(fd, entry.mode);
    fs.futimesSync(fd, entry.mtime, entry.mtime);
  } finally {
    fs.closeSync(fd);
  }
}

function isAtOrBelow(candidate: string, relPath: string): boolean {
  return candidate === relPath || candidate.startsWith(`${relPath}/`);
}

function hasDeferredBelow(deferredSpecials: Set<string>, relPath: string): boolean {
  for (const pending of deferredSpecials) if (isAtOrBelow(pending, relPath)) return true;
  return false;
}

async function makeDeferredSpecials(root: string, work: DeferredWork, deferredSpecials: Set<string>): Promise<void> {
  await makeSpecialFiles(root, work.specials);
  for (const special of work.specials) setAttributes(path.join(root, special.relPath), special, false);
  for (const link of work.links) fs.linkSync(path.join(root, link.targetRel), path.join(root, link.relPath));
  work.specials = [];
  work.links = [];
  deferredSpecials.clear();
}

function forgetDeferredBelow(work: DeferredWork, relPath: string): void {
  for (const pending of [...work.xattrs.keys()]) if (isAtOrBelow(pending, relPath)) work.xattrs.delete(pending);
  work.dirTimes = work.dirTimes.filter((dir) => !isAtOrBelow(dir.relPath, relPath));
}

/** Unpacks `source` into `root`, which must exist. Throws on the first bad entry. */
export async function applyLayer(source: AsyncIterable<Buffer>, root: string): Promise<void> {
  const knownDirs = new Set<string>();
  // The root starts empty, so only a path this archive already wrote can be in the way.
  const written = new Set<string>();
  const deferredSpecials = new Set<string>();
  const work: DeferredWork = { specials: [], links: [], xattrs: new Map(), dirTimes: [] };

  for await (const entry of readTar(source)) {
    const name = cleanMemberName(entry.path);
    if (name === '') {
      // Docker keeps the layer root's own attributes and skips the archive's `./` entry.
      await drain(entry.body);
      continue;
    }
    const parentRel = await resolveDirInRoot(root, path.posix.dirname(name) === '.' ? '' : path.posix.dirname(name), knownDirs);
    const base = path.posix.basename(name);
    const relPath = parentRel ? `${parentRel}/${base}` : base;
    const abs = path.join(root, relPath);

    let existing = written.has(relPath) || knownDirs.has(relPath) ? fs.lstatSync(abs, { throwIfNoEntry: false }) : undefined;
    const replaces = existing !== undefined && !(existing.isDirectory() && entry.type === 'directory');
    if (deferredSpecials.has(relPath) || (replaces && hasDeferredBelow(deferredSpecials, relPath))) {
      // Docker makes these as it meets them, so a later entry replaces them (or the directory
      // they are in) like anything else; making the pending batch now gives the same result.
      await makeDeferredSpecials(root, work, deferredSpecials);
      existing = fs.lstatSync(abs, { throwIfNoEntry: false });
    }
    if (existing && !(existing.isDirectory() && entry.type === 'directory')) {
      fs.rmSync(abs, { recursive: true, force: true });
      // Only what was below is gone; the rest of knownDirs still records the directories (implied
      // ones included) that the check above must find in the way of a later entry.
      for (const known of [...knownDirs]) if (isAtOrBelow(known, relPath)) knownDirs.delete(known);
      // What the archive said about the removed paths is void: applied at the end, it would go
      // through whatever replaces them, such as a symlink to a host directory.
      forgetDeferredBelow(work, relPath);
    }
    written.add(relPath);

    if (base === OPAQUE_MARKER) {
      addXattr(work, parentRel, OPAQUE_XATTR, Buffer.from('y'));
      await drain(entry.body);
      continue;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const hidden = base.slice(WHITEOUT_PREFIX.length);
      const hiddenRel = parentRel ? `${parentRel}/${hidden}` : hidden;
      work.specials.push({ relPath: hiddenRel, type: 'char', major: 0, minor: 0, uid: entry.uid, gid: entry.gid, mode: 0, mtime: entry.mtime });
      deferredSpecials.add(hiddenRel);
      // The whiteout lands at the hidden name: a later entry there must replace it.
      written.add(hiddenRel);
      await drain(entry.body);
      continue;
    }

    const attrs: Attributes = { uid: entry.uid, gid: entry.gid, mode: entry.mode, mtime: entry.mtime };
    switch (entry.type) {
      case 'directory':
        if (!existing?.isDirectory()) fs.mkdirSync(abs, { mode: 0o700 });
        knownDirs.add(relPath);
        fs.lchownSync(abs, entry.uid, entry.gid);
        fs.chmodSync(abs, entry.mode);
        work.dirTimes.push({ relPath, mtime: entry.mtime });
        break;
      case 'file':
        await writeRegularFile(abs, entry);
        break;
      case 'symlink':
        checkSymlinkTarget(root, relPath, entry.linkname);
        fs.symlinkSync(entry.linkname, abs);
        setAttributes(abs, attrs, true);
        break;
      case 'hardlink': {
        const targetName = cleanMemberName(entry.linkname);
        const targetParent = await resolveDirInRoot(root, path.posix.dirname(targetName) === '.' ? '' : path.posix.dirname(targetName), knownDirs);
        const targetRel = targetParent ? `${targetParent}/${path.posix.basename(targetName)}` : path.posix.basename(targetName);
        if (deferredSpecials.has(targetRel)) {
          work.links.push({ relPath, targetRel });
          deferredSpecials.add(relPath);
        } else {
          try {
            fs.linkSync(path.join(root, targetRel), abs);
          } catch (err) {
            throw new Error(`hardlink ${relPath} -> ${entry.linkname}: ${(err as Error).message}`);
          }
          setAttributes(abs, attrs, fs.lstatSync(abs).isSymbolicLink());
        }
        break;
      }
      case 'char':
      case 'block':
      case 'fifo':
        work.specials.push({ relPath, type: entry.type, major: entry.devmajor, minor: entry.devminor, ...attrs });
        deferredSpecials.add(relPath);
        break;
    }
    for (const [xattr, value] of entry.xattrs) addXattr(work, relPath, xattr, value);
    await drain(entry.body);
  }

  await makeDeferredSpecials(root, work, deferredSpecials);
  await writeTreeXattrs(root, work.xattrs);
  // Last, since creating entries inside a directory changes its mtime.
  for (const dir of work.dirTimes) fs.lutimesSync(path.join(root, dir.relPath), dir.mtime, dir.mtime);
}
