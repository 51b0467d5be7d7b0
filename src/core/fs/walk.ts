import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';

export interface WalkEntry {
  /** Path relative to the walked root, '' for the root itself. */
  relPath: string;
  stat: Stats;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Pre-order walk in byte order of names, like Go's filepath.Walk, so tars and change lists come
 * out in the order Docker produces them. Symlinks are reported, never followed.
 */
export async function* walkTree(root: string): AsyncGenerator<WalkEntry> {
  const stack: string[] = [''];
  while (stack.length > 0) {
    const relPath = stack.pop()!;
    const stat = await fs.lstat(path.join(root, relPath));
    yield { relPath, stat };
    if (!stat.isDirectory()) continue;
    const names = (await fs.readdir(path.join(root, relPath))).sort(byteOrder);
    for (let i = names.length - 1; i >= 0; i--) stack.push(relPath ? `${relPath}/${names[i]}` : names[i]!);
  }
}

export function deviceNumbers(rdev: number): { major: number; minor: number } {
  // glibc's gnu_dev_major/minor split of a 64-bit dev_t.
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev >>> 0;
  return {
    major: ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0),
    minor: ((low & 0xff) | ((low >>> 12) & 0xfff00) | ((high & 0xfff) << 20)) >>> 0,
  };
}

/** Apparent size of the files below root, each hardlinked inode once (Docker's directory.Size). */
export async function treeSize(root: string): Promise<number> {
  const seen = new Set<number>();
  let size = 0;
  for await (const { stat } of walkTree(root)) {
    if (stat.isDirectory() || stat.size === 0 || seen.has(stat.ino)) continue;
    seen.add(stat.ino);
    size += stat.size;
  }
  return size;
}
