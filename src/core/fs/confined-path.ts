import fs from 'node:fs/promises';
import path from 'node:path';

// A layer is unpacked without chroot, so every name from a tar is resolved here the way a
// chroot into the layer would resolve it: symlinks in parent directories are followed, but
// `..` and absolute targets stop at the layer root, so nothing is ever written outside it.

const MAX_SYMLINK_HOPS = 40;

export class LayerEscapeError extends Error {}

/**
 * Cleans a tar member name the way Docker does (filepath.Clean, then joined under the root):
 * leading slashes are dropped, `..` that would climb above the root is an error.
 * Returns '' for the root itself.
 */
export function cleanMemberName(name: string): string {
  const cleaned = path.posix.normalize(`${name}`).replace(/^\/+/, '').replace(/\/+$/, '');
  if (cleaned === '..' || cleaned.startsWith('../')) {
    throw new LayerEscapeError(`tar entry ${JSON.stringify(name)} points outside the layer`);
  }
  return cleaned === '.' ? '' : cleaned;
}

/**
 * Resolves directory `relDir` (already cleaned) under `root`, following symlinks inside the
 * root. `knownDirs` holds relative paths already known to be real directories, which spares an
 * lstat per component on the common path. Missing components are created as 0755 root-owned
 * directories, as Docker does for parents a tar does not list.
 */
export async function resolveDirInRoot(root: string, relDir: string, knownDirs: Set<string>): Promise<string> {
  if (relDir === '' || knownDirs.has(relDir)) return relDir;
  const pending = relDir.split('/');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    resolved.push(part);
    const rel = resolved.join('/');
    if (knownDirs.has(rel)) continue;
    const abs = path.join(root, rel);
    let stat;
    try {
      stat = await fs.lstat(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fs.mkdir(abs, { mode: 0o755 });
      await fs.chmod(abs, 0o755);
      knownDirs.add(rel);
      continue;
    }
    if (stat.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw new LayerEscapeError(`too many symlinks resolving ${relDir}`);
      const target = await fs.readlink(abs);
      resolved.pop();
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/'));
      continue;
    }
    if (!stat.isDirectory()) throw new Error(`${rel} is not a directory (needed by ${relDir})`);
    knownDirs.add(rel);
  }
  return resolved.join('/');
}
