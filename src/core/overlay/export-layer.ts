import fs from 'node:fs';
import path from 'node:path';
import { tarHeader } from '../tar/entry.ts';
import { TarWriter } from '../tar/writer.ts';
import { readTreeXattrs } from '../fs/xattr.ts';
import { deviceNumbers, walkTree } from '../fs/walk.ts';
import { isOpaque, isWhiteout } from './changes.ts';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './apply-layer.ts';

// Writes an overlay upper directory as a layer tar in the form Docker's overlay2 Diff gives:
// overlay whiteouts become `.wh.<name>` files and opaque directories get a `.wh..wh..opq`
// entry, so any driver can apply the result.

/** Attributes that only mean something to overlay itself and must not travel in a layer. */
function travels(name: string): boolean {
  return !name.startsWith('trusted.overlay.');
}

export async function exportLayer(root: string, out: NodeJS.WritableStream): Promise<void> {
  const xattrsByPath = await readTreeXattrs(root);
  const firstNameOfInode = new Map<number, string>();
  const writer = new TarWriter(out);
  for await (const { relPath, stat } of walkTree(root)) {
    if (relPath === '' || stat.isSocket()) continue;
    const header = tarHeader({
      path: relPath,
      mode: stat.mode & 0o7777,
      uid: stat.uid,
      gid: stat.gid,
      mtime: Math.floor(stat.mtimeMs / 1000),
      xattrs: new Map([...(xattrsByPath.get(relPath) ?? [])].filter(([name]) => travels(name))),
    });
    const abs = path.join(root, relPath);
    if (isWhiteout(stat)) {
      const dir = path.posix.dirname(relPath);
      header.path = dir === '.' ? `${WHITEOUT_PREFIX}${path.posix.basename(relPath)}` : `${dir}/${WHITEOUT_PREFIX}${path.posix.basename(relPath)}`;
      header.mode = 0o600;
      await writer.add(header);
      continue;
    }
    if (stat.isDirectory()) {
      header.type = 'directory';
      header.path = `${relPath}/`;
      await writer.add(header);
      if (isOpaque(xattrsByPath.get(relPath))) {
        // Docker builds this header without a ModTime, which Go's tar writer stores as 0.
        await writer.add({ ...header, type: 'file', path: `${relPath}/${OPAQUE_MARKER}`, mode: header.mode & 0o777, mtime: 0, xattrs: new Map() });
      }
      continue;
    }
    // Docker checks the link count of every non-directory, symlinks included.
    if (stat.nlink > 1) {
      const original = firstNameOfInode.get(stat.ino);
      if (original !== undefined) {
        await writer.add({ ...header, type: 'hardlink', linkname: original });
        continue;
      }
      firstNameOfInode.set(stat.ino, relPath);
    }
    if (stat.isSymbolicLink()) {
      header.type = 'symlink';
      header.linkname = await fs.promises.readlink(abs);
      await writer.add(header);
    } else if (stat.isCharacterDevice() || stat.isBlockDevice()) {
      const { major, minor } = deviceNumbers(stat.rdev);
      await writer.add({ ...header, type: stat.isCharacterDevice() ? 'char' : 'block', devmajor: major, devminor: minor });
    } else if (stat.isFIFO()) {
      await writer.add({ ...header, type: 'fifo' });
    } else {
      header.size = stat.size;
      await writer.add(header, fs.createReadStream(abs));
    }
  }
  await writer.finish();
}
