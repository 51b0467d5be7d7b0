import fs from 'node:fs/promises';
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

async function setAttributes(abs: string, attrs: Attributes, isSymlink: boolean): Promise<void> {
  await fs.lchown(abs, attrs.uid, attrs.gid);
  // chmod after chown: chown clears setuid/setgid bits.
  if (!isSymlink) await fs.chmod(abs, attrs.mode);
  await fs.lutimes(abs, attrs.mtime, attrs.mtime);
}

async function writeRegularFile(abs: string, entry: TarEntry): Promise<void> {
  const handle = await fs.open(abs, 'w', 0o600);
  try {
    for await (const chunk of entry.body) await handle.write(chunk);
    await handle.chown(entry.uid, entry.gid);
    await handle.chmod(entry.mode);
    await handle.utimes(entry.mtime, entry.mtime);
  } finally {
    await handle.close();
  }
}

/** Unpacks `source` into `root`, which must exist. Throws on the first bad entry. */
export async function applyLayer(source: AsyncIterable<Buffer>, root: string): Promise<void> {
  const knownDirs = new Set<string>();
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

    const existing = await fs.lstat(abs).catch(() => undefined);
    if (existing && !(existing.isDirectory() && entry.type === 'directory')) {
      await fs.rm(abs, { recursive: true, force: true });
      knownDirs.clear();
    }

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
      await drain(entry.body);
      continue;
    }

    const attrs: Attributes = { uid: entry.uid, gid: entry.gid, mode: entry.mode, mtime: entry.mtime };
    switch (entry.type) {
      case 'directory':
        if (!existing?.isDirectory()) await fs.mkdir(abs, { mode: 0o700 });
        knownDirs.add(relPath);
        await fs.lchown(abs, entry.uid, entry.gid);
        await fs.chmod(abs, entry.mode);
        work.dirTimes.push({ relPath, mtime: entry.mtime });
        break;
      case 'file':
        await writeRegularFile(abs, entry);
        break;
      case 'symlink':
        checkSymlinkTarget(root, relPath, entry.linkname);
        await fs.symlink(entry.linkname, abs);
        await setAttributes(abs, attrs, true);
        break;
      case 'hardlink': {
        const targetName = cleanMemberName(entry.linkname);
        const targetParent = await resolveDirInRoot(root, path.posix.dirname(targetName) === '.' ? '' : path.posix.dirname(targetName), knownDirs);
        const targetRel = targetParent ? `${targetParent}/${path.posix.basename(targetName)}` : path.posix.basename(targetName);
        if (deferredSpecials.has(targetRel)) {
          work.links.push({ relPath, targetRel });
          deferredSpecials.add(relPath);
        } else {
          await fs.link(path.join(root, targetRel), abs).catch((err: Error) => {
            throw new Error(`hardlink ${relPath} -> ${entry.linkname}: ${err.message}`);
          });
          const target = await fs.lstat(abs);
          await setAttributes(abs, attrs, target.isSymbolicLink());
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

  await makeSpecialFiles(root, work.specials);
  for (const special of work.specials) await setAttributes(path.join(root, special.relPath), special, false);
  for (const link of work.links) await fs.link(path.join(root, link.targetRel), path.join(root, link.relPath));
  await writeTreeXattrs(root, work.xattrs);
  // Last, since creating entries inside a directory changes its mtime.
  for (const dir of work.dirTimes) await fs.lutimes(path.join(root, dir.relPath), dir.mtime, dir.mtime);
}
