// Canonical file trees from `docker export` tars, so a container's filesystem under the plugin
// can be compared field by field with the same container under Docker's overlay2.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readTar } from '../../src/core/tar/reader.ts';
import type { TarEntryType } from '../../src/core/tar/entry.ts';
import type { Dockerd } from './dockerd.ts';
import { run } from './process.ts';

export interface TreeEntry {
  /** Absolute, normalised: `/`, `/etc/passwd`. */
  path: string;
  /** Never 'hardlink': a hardlink takes its original's record and lists the group in `hardlinks`. */
  type: Exclude<TarEntryType, 'hardlink'>;
  /** Permission bits with setuid/setgid/sticky, e.g. 0o4755. */
  mode: number;
  uid: number;
  gid: number;
  /** Content length; 0 for anything but regular files. */
  size: number;
  /** Seconds since the epoch; undefined where Docker itself sets the time (see VOLATILE_MTIME). */
  mtime: number | undefined;
  /** Hex sha256 of the content, regular files only. */
  sha256?: string;
  /** Symlink target, verbatim. */
  linkTarget?: string;
  devmajor?: number;
  devminor?: number;
  /** `name=hex` per extended attribute, sorted by name. */
  xattrs: string[];
  /** Every path of the hardlink group this entry belongs to, sorted; absent for a single link. */
  hardlinks?: string[];
}

export type Tree = Map<string, TreeEntry>;

/**
 * Paths whose mtime is the container's creation time, not the image's. On overlay2 a
 * `docker export` of the feature image showed exactly /.dockerenv, /dev, /dev/{console,pts,shm},
 * /etc and /etc/{hostname,hosts,mtab,resolv.conf} with it: docker's init layer creates the
 * files (empty placeholders for bind mounts, mtab -> /proc/mounts) and so touches /etc and /dev.
 * It also creates /proc and /sys for images without them, and / changes with /.dockerenv (the
 * export has no entry for / itself, other tars may). Every other path keeps the image's time,
 * which test/harness/overlay2-baseline.test.ts checks by exporting two containers.
 */
const VOLATILE_MTIME = new Set([
  '/',
  '/.dockerenv',
  '/dev',
  '/dev/console',
  '/dev/pts',
  '/dev/shm',
  '/etc',
  '/etc/hostname',
  '/etc/hosts',
  '/etc/mtab',
  '/etc/resolv.conf',
  '/proc',
  '/sys',
]);

/** Reads a tar (a `docker export`, or any rootfs tar) into canonical records keyed by path. */
export async function treeOfExport(tarPath: string): Promise<Tree> {
  const tree: Tree = new Map();
  // Hardlink path -> original path; resolved after the pass, as both must have been read.
  const hardlinkTargets = new Map<string, string>();
  for await (const entry of readTar(createReadStream(tarPath))) {
    const path = normalisePath(entry.path);
    if (entry.type === 'hardlink') {
      hardlinkTargets.set(path, normalisePath(entry.linkname));
      continue;
    }
    const record: TreeEntry = {
      path,
      type: entry.type,
      mode: entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      size: entry.size,
      mtime: VOLATILE_MTIME.has(path) ? undefined : entry.mtime,
      xattrs: [...entry.xattrs].map(([name, value]) => `${name}=${value.toString('hex')}`).sort(),
    };
    if (entry.type === 'file') {
      const hash = createHash('sha256');
      for await (const chunk of entry.body) hash.update(chunk);
      record.sha256 = hash.digest('hex');
    }
    if (entry.type === 'symlink') record.linkTarget = entry.linkname;
    if (entry.type === 'char' || entry.type === 'block') {
      record.devmajor = entry.devmajor;
      record.devminor = entry.devminor;
    }
    tree.set(path, record);
  }
  const groups = new Map<string, string[]>();
  for (const [path, original] of hardlinkTargets) {
    const target = tree.get(original);
    if (!target) throw new Error(`${tarPath}: hardlink ${path} points at ${original}, which is not in the archive`);
    const group = groups.get(original) ?? [original];
    group.push(path);
    groups.set(original, group);
  }
  for (const [original, group] of groups) {
    group.sort();
    const target = tree.get(original) as TreeEntry;
    for (const path of group) tree.set(path, { ...target, path, hardlinks: group });
  }
  return tree;
}

/**
 * The tree of a fresh container of image, as `docker export` shows it: the image's merged
 * layers plus docker's init layer. The container is created (never started) and removed again.
 */
export async function exportTree(dockerd: Dockerd, image: string): Promise<Tree> {
  const container = (await dockerd.docker(['create', '--network', 'none', image])).stdout.trim();
  const tarPath = join(dockerd.dir, `export-${container}.tar`);
  try {
    await dockerd.docker(['export', '--output', tarPath, container]);
    return await treeOfExport(tarPath);
  } finally {
    await rm(tarPath, { force: true });
    await dockerd.docker(['rm', container]);
  }
}

/**
 * Tars paths (relative, e.g. `feat`) of a running container's root, seen from the host through
 * /proc/<pid>/root, for treeOfExport. `docker export` keeps only the security.capability
 * xattr, so this is how user.* xattrs (which overlay2 does preserve) get compared. Name only
 * image content: /proc, /sys, /dev and the /etc/hosts-style bind mounts are the runtime's.
 */
export async function tarOfRunningRoot(pid: number, paths: readonly string[], outTar: string): Promise<void> {
  await run('tar', [
    '--create',
    `--file=${outTar}`,
    `--directory=/proc/${pid}/root`,
    '--format=posix',
    '--xattrs',
    '--xattrs-include=*',
    '--numeric-owner',
    '--sort=name',
    '--',
    ...paths,
  ]);
}

/** `./etc/`, `etc`, `/etc/` all become `/etc`; the root is `/`. */
function normalisePath(name: string): string {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  return `/${parts.join('/')}`;
}

/** Readable differences between two trees, one line each, sorted by path; empty when equal. */
export function diffTrees(a: Tree, b: Tree, labels: [string, string] = ['a', 'b']): string[] {
  const differences: string[] = [];
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const path of paths) {
    const left = a.get(path);
    const right = b.get(path);
    if (!left || !right) {
      const present = (left ?? right) as TreeEntry;
      differences.push(`${path}: only in ${left ? labels[0] : labels[1]} (${present.type})`);
      continue;
    }
    for (const field of FIELDS) {
      const leftValue = describe(field, left[field]);
      const rightValue = describe(field, right[field]);
      if (leftValue !== rightValue) differences.push(`${path}: ${field} ${labels[0]}=${leftValue} ${labels[1]}=${rightValue}`);
    }
  }
  return differences;
}

const FIELDS = ['type', 'mode', 'uid', 'gid', 'size', 'mtime', 'sha256', 'linkTarget', 'devmajor', 'devminor', 'xattrs', 'hardlinks'] as const;

function describe(field: (typeof FIELDS)[number], value: TreeEntry[(typeof FIELDS)[number]]): string {
  if (value === undefined) return '-';
  if (field === 'mode') return `0${(value as number).toString(8)}`;
  if (Array.isArray(value)) return `[${value.join(', ')}]`;
  return String(value);
}
