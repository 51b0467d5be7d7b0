import path from 'node:path';
import { findOnPath } from '../core/fs/run.ts';
import { isServed } from '../core/fuse/mount.ts';
import { log } from '../core/log.ts';
import { cvmfs2Mounter } from './cvmfs2-mounter.ts';
import { embeddedMounter } from './embedded-mounter.ts';
import { unmountRepository } from './mount-process.ts';
import type { RepositoryAccess, RepositorySpec } from './repository-config.ts';
import type { RepositoryMounter } from './repository-mounts.ts';

// Which CernVM-FS client mounts each repository (--client). cvmfs2 knows only what /etc/cvmfs
// configures, so a repository given by URL always goes to the embedded client; `auto` sends
// the configured ones to cvmfs2 where it is installed, as the upstream plugin did.

export const CLIENT_CHOICES = ['auto', 'embedded', 'cvmfs2'] as const;
export type ClientChoice = (typeof CLIENT_CHOICES)[number];

/** Where cvmfs2 reads its configuration, whatever --cvmfs-config says. */
const CVMFS2_CONFIG_ROOT = '/etc/cvmfs';

function isClientChoice(text: string): text is ClientChoice {
  return (CLIENT_CHOICES as readonly string[]).includes(text);
}

/** Refuses repositories given by URL to --client cvmfs2, which mounts only what /etc/cvmfs configures. */
export function checkClientCanMount(choice: string, specs: Iterable<RepositorySpec>): void {
  if (choice !== 'cvmfs2') return;
  const byUrl = [...specs].filter((spec) => spec.serverUrl !== undefined).map((spec) => spec.fqrn);
  if (byUrl.length > 0) throw new Error(`--client cvmfs2: cvmfs2 mounts only repositories configured in ${CVMFS2_CONFIG_ROOT}, but ${byUrl.join(', ')} is given by URL; configure it there, or leave out --client`);
}

/** The client for each repository as `choice` says; refuses a choice that cannot work here. */
export function selectRepositoryClients(choice: string, access: RepositoryAccess, logDir: string): RepositoryMounter {
  if (!isClientChoice(choice)) throw new Error(`--client ${choice}: choose one of ${CLIENT_CHOICES.join(', ')}`);
  const executable = findOnPath('cvmfs2');
  const readsOwnConfig = path.resolve(access.configRoot) === CVMFS2_CONFIG_ROOT;
  // Repositories by URL (which only the embedded client mounts) come from flags or later from
  // storage options; a standby process is kept only where the embedded client is the rule.
  const embedded = embeddedMounter(access, logDir, { standby: choice === 'embedded' || (choice === 'auto' && !(executable && readsOwnConfig)) });
  if (choice === 'embedded') {
    log.info('repositories are mounted with the embedded CernVM-FS client (--client embedded)');
    return embedded;
  }
  if (choice === 'cvmfs2') {
    if (!executable) throw new Error('--client cvmfs2: cvmfs2 is not installed here (not found on PATH); install the CernVM-FS client, or leave out --client to use the embedded one');
    if (!readsOwnConfig) throw new Error(`--client cvmfs2: cvmfs2 reads its configuration from ${CVMFS2_CONFIG_ROOT}, so --cvmfs-config ${access.configRoot} cannot apply to it`);
    checkClientCanMount(choice, access.specs.values());
    log.info(`repositories are mounted with cvmfs2 (${executable}; --client cvmfs2)`);
    return cvmfs2Mounter(executable, logDir);
  }
  if (!executable || !readsOwnConfig) {
    const why = executable ? `--cvmfs-config ${access.configRoot} is not cvmfs2's ${CVMFS2_CONFIG_ROOT}` : 'cvmfs2 is not installed';
    log.info(`repositories are mounted with the embedded CernVM-FS client (${why})`);
    return embedded;
  }
  log.info(`repositories configured in ${CVMFS2_CONFIG_ROOT} are mounted with cvmfs2 (${executable}), those given by URL with the embedded CernVM-FS client`);
  const cvmfs2 = cvmfs2Mounter(executable, logDir);
  const clientOf = (repository: string) => (access.specs.get(repository)?.serverUrl !== undefined ? embedded : cvmfs2);
  return {
    clientName: (repository) => clientOf(repository).clientName(repository),
    rawWhiteouts: (repository) => clientOf(repository).rawWhiteouts(repository),
    mount: (repository, target) => clientOf(repository).mount(repository, target),
    // Both clients' mounts are FUSE mounts, probed and unmounted alike.
    unmount: unmountRepository,
    isAlive: (target) => isServed(target),
    usedBefore: async () => (await (embedded.usedBefore?.() ?? [])).filter((repository) => clientOf(repository) === embedded),
  };
}
