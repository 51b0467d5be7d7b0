import fs from 'node:fs/promises';
import { log } from '../log.ts';
import { run } from '../fs/run.ts';

// What overlay2 checks about the host before it agrees to run: the kernel knows overlay, and
// the backing filesystem of the store can hold an overlay upper directory.

const FS_NAMES: Record<number, string> = {
  0xef53: 'extfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0xf2f52010: 'f2fs',
  0x794c7630: 'overlayfs',
  0x61756673: 'aufs',
  0xf15f: 'ecryptfs',
  0x2fc12fc1: 'zfs',
  0x6969: 'nfs',
};

const UNSUPPORTED_BACKING = new Set(['overlayfs', 'aufs', 'ecryptfs', 'zfs', 'nfs']);

export async function backingFilesystem(dir: string): Promise<string> {
  const { type } = await fs.statfs(dir);
  return FS_NAMES[type] ?? `unknown (0x${type.toString(16)})`;
}

/**
 * Overlay needs directory entry types (d_type) from the upper filesystem. Every filesystem we
 * accept has them, except XFS formatted with ftype=0, which only xfs_info can tell.
 */
async function checkXfsDirectoryTypes(home: string): Promise<void> {
  let info: string;
  try {
    info = (await run('xfs_info', [home])).stdout.toString('utf8');
  } catch (err) {
    log.warn(`cannot check that the XFS filesystem of ${home} has d_type (ftype=1): ${(err as Error).message}`);
    return;
  }
  if (/ftype=0\b/.test(info)) {
    throw new Error(`${home} is on XFS formatted with ftype=0 (no d_type), which overlay cannot use; reformat it with mkfs.xfs -n ftype=1 or move the Docker data-root`);
  }
}

export async function checkHostSupport(home: string): Promise<string> {
  const filesystems = await fs.readFile('/proc/filesystems', 'utf8');
  if (!/\toverlay$/m.test(filesystems)) {
    throw new Error('the kernel has no overlay filesystem; load it with `modprobe overlay` and restart dockerd');
  }
  const backing = await backingFilesystem(home);
  if (UNSUPPORTED_BACKING.has(backing)) {
    throw new Error(`${home} is on ${backing}, which cannot back overlay layers; put the Docker data-root on ext4 or xfs`);
  }
  if (backing === 'xfs') await checkXfsDirectoryTypes(home);
  return backing;
}

/**
 * Mount options that switch off overlay features the kernel enables by default here:
 * redirect_dir and metacopy hide renames and metadata-only copies in xattrs that a plain
 * walk of the upper directory (Diff, Changes) cannot see, and index ties layers to one mount.
 */
export async function overlayFeatureOptions(): Promise<string[]> {
  const options: string[] = [];
  for (const feature of ['index', 'redirect_dir', 'metacopy']) {
    const value = await fs.readFile(`/sys/module/overlay/parameters/${feature}`, 'utf8').catch(() => 'N');
    if (!/^(N|off)/i.test(value.trim())) options.push(`${feature}=off`);
  }
  return options;
}
