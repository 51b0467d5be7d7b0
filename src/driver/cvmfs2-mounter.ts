import { setTimeout as sleep } from 'node:timers/promises';
import { isServed } from '../core/fuse/mount.ts';
import { logTail, MOUNT_TIMEOUT_MS, startMountProcess, unmountRepository } from './mount-process.ts';
import type { RepositoryMounter } from './repository-mounts.ts';

// The real CernVM-FS client, run the way the upstream plugin ran it: `cvmfs2 -o <options> FQRN
// TARGET` with everything else (servers, keys, proxies, cache) from /etc/cvmfs. cvmfs2 returns
// once the repository is mounted and leaves a daemon serving it. It shows layers as they are
// stored, so the driver puts the whiteouts in place around them.

/**
 * The upstream plugin's options, read-only instead of `rw` (a CernVM-FS mount is read-only
 * either way): fsname names the mount's source, allow_other lets containers of any user read
 * it, and grab_mountpoint has cvmfs2 take over the directory made for it.
 */
export const CVMFS2_OPTIONS = 'ro,fsname=cvmfs2,allow_other,grab_mountpoint';

export function cvmfs2Mounter(executable: string, logDir: string): RepositoryMounter {
  return {
    clientName: () => `cvmfs2 (${executable})`,
    rawWhiteouts: () => true,
    async mount(repository, target) {
      const loader = startMountProcess(executable, ['-o', CVMFS2_OPTIONS, repository, target], logDir, repository);
      const ended = await Promise.race([loader.ended, sleep(MOUNT_TIMEOUT_MS, undefined, { ref: false })]);
      if (!ended) {
        loader.kill();
        throw new Error(`cvmfs2 did not mount ${repository} within ${MOUNT_TIMEOUT_MS / 1000} s:\n${logTail(loader.logFile)}`);
      }
      if (ended.code !== 0) throw new Error(`cvmfs2 could not mount ${repository} (${ended.how}):\n${logTail(loader.logFile)}`);
      if (!(await isServed(target))) throw new Error(`cvmfs2 reported ${repository} mounted, but nothing serves ${target}:\n${logTail(loader.logFile)}`);
    },
    unmount: unmountRepository,
    isAlive: (target) => isServed(target),
  };
}
