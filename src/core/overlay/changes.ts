import fs from 'node:fs/promises';
import path from 'node:path';
import type { Change } from '../../driver/protocol.ts';
import { readTreeXattrs } from '../fs/xattr.ts';
import { deviceNumbers, walkTree } from '../fs/walk.ts';
import { OPAQUE_XATTR } from './apply-layer.ts';

// The changes of an overlay upper directory against its lower layers, with the rules of
// Docker's pkg/archive OverlayChanges: a 0/0 character device or an opaque directory is a
// deletion, a path present below is a modification (unless an unchanged directory), anything
// else is an addition; the parent of an added or deleted path is reported modified.

const MODIFY = 0;
const ADD = 1;
const DELETE = 2;

export function isWhiteout(stat: { isCharacterDevice(): boolean; rdev: number }): boolean {
  if (!stat.isCharacterDevice()) return false;
  const { major, minor } = deviceNumbers(stat.rdev);
  return major === 0 && minor === 0;
}

export function isOpaque(xattrs: Map<string, Buffer> | undefined): boolean {
  const value = xattrs?.get(OPAQUE_XATTR);
  return value !== undefined && value.length === 1 && value[0] === 0x79;
}

function sameSecondOrExact(aMs: number, bMs: number): boolean {
  // Tar keeps whole seconds, so an mtime that went through a tar matches its source to the second.
  if (aMs === bMs) return true;
  return Math.floor(aMs / 1000) === Math.floor(bMs / 1000) && (aMs % 1000 === 0 || bMs % 1000 === 0);
}

/** `lowerDirs` topmost first, as in the overlay lowerdir option. */
export async function overlayChanges(upperDir: string, lowerDirs: string[]): Promise<Change[]> {
  const xattrs = await readTreeXattrs(upperDir);
  const changes: Change[] = [];
  const changedDirs = new Set<string>();
  for await (const { relPath, stat } of walkTree(upperDir)) {
    if (relPath === '') continue;
    const changePath = `/${relPath}`;
    let kind: Change['Kind'] | undefined;
    if (isWhiteout(stat) || (stat.isDirectory() && isOpaque(xattrs.get(relPath)))) {
      kind = DELETE;
    } else {
      kind = ADD;
      for (const lower of lowerDirs) {
        const below = await fs.stat(path.join(lower, relPath)).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
          throw err;
        });
        if (!below) continue;
        if (below.isDirectory() && stat.isDirectory() && below.size === stat.size && below.mode === stat.mode && sameSecondOrExact(below.mtimeMs, stat.mtimeMs)) {
          kind = undefined;
        } else {
          kind = MODIFY;
        }
        break;
      }
      if (kind === undefined) continue;
    }
    if (stat.isDirectory()) changedDirs.add(changePath);
    if (kind === ADD || kind === DELETE) {
      const parent = path.posix.dirname(changePath);
      if (parent !== '/' && !changedDirs.has(parent)) {
        changes.push({ Path: parent, Kind: MODIFY });
        changedDirs.add(parent);
      }
    }
    changes.push({ Path: changePath, Kind: kind });
  }
  return changes;
}
