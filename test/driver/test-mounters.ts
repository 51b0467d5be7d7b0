// Stand-ins for a CernVM-FS client in driver tests: a bind mount of a prepared directory per
// repository shows the driver's thin-layer logic what a real client would.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { isMountPoint } from '../../src/core/fs/mounts.ts';
import type { RepositoryMounter } from '../../src/driver/repository-mounts.ts';

export const refusingMounter: RepositoryMounter = {
  clientName: () => 'none',
  rawWhiteouts: () => false,
  mount: async (repository) => {
    throw new Error(`test: no client for ${repository}`);
  },
  unmount: async () => {},
  isAlive: async () => false,
};

/**
 * Mounts a snapshot of `<root>/<repository>` at the target, as a client mounts the revision
 * current at that moment, and counts what it did. With `rawWhiteouts` it stands for cvmfs2: the
 * snapshot holds layers as CernVM-FS stores them (`.wh.*` and `.cvmfscatalog` as plain files).
 * `usedBefore` is what it says earlier mounts on the host used.
 */
export function bindMounter(root: string, options: { rawWhiteouts?: boolean; usedBefore?: string[] } = {}): RepositoryMounter & { mounts: string[]; unmounts: string[] } {
  const mounts: string[] = [];
  const unmounts: string[] = [];
  return {
    clientName: () => 'bind mounts',
    rawWhiteouts: () => options.rawWhiteouts ?? false,
    mounts,
    unmounts,
    mount: async (repository, target) => {
      const snapshot = path.join(`${root}-revisions`, `${repository}-${mounts.length}`);
      execFileSync('mkdir', ['-p', path.dirname(snapshot)]);
      execFileSync('cp', ['-a', path.join(root, repository), snapshot]);
      execFileSync('mount', ['--bind', '-o', 'ro', snapshot, target]);
      mounts.push(repository);
    },
    unmount: async (target) => {
      execFileSync('umount', [target]);
      unmounts.push(path.basename(target));
    },
    isAlive: (target) => isMountPoint(target),
    usedBefore: async () => options.usedBefore ?? [],
  };
}
