import sea from 'node:sea';
import { setTimeout as sleep } from 'node:timers/promises';
import { repositoriesWithDirectoriesInUse } from '../core/cvmfs/directories-in-use.ts';
import { isMounted, isServed } from '../core/fuse/mount.ts';
import { LogLevels } from 'consola';
import { log } from '../core/log.ts';
import { logTail, mountLogFile, MOUNT_TIMEOUT_MS, startMountProcess, unmountRepository } from './mount-process.ts';
import { startStandbyMount, type StandbyMount } from './standby-mount.ts';
import type { RepositoryMounter } from './repository-mounts.ts';
import type { RepositoryAccess } from './repository-config.ts';

// The embedded CernVM-FS client: each repository is served by a `cvmfs-graphdriver mount`
// process of its own, like cvmfs2 serves its mounts. Started detached, it outlives a restart of
// a legacy plugin, so running containers keep their files; the restarted driver finds the
// mounts alive and adopts them.

/** This program's entry script when run by Node: the source's or the bundle's. */
const ENTRY_SCRIPT = /(^|\/)(main\.ts|cvmfs-graphdriver\.cjs)$/;

/**
 * How to run this same program again: the single executable, or Node with the entry script.
 * A process that only embeds the driver (a test) has some other script as its entry, and
 * running that again would start the embedder over, again and again.
 */
function selfCommand(): string[] {
  if (sea.isSea()) return [process.execPath];
  const entry = process.argv[1] ?? '';
  if (!ENTRY_SCRIPT.test(entry)) throw new Error(`the embedded client runs this program again, but this process was started from ${entry || 'no script'}, not from src/main.ts or the bundle`);
  return [process.execPath, ...process.execArgv, entry];
}

// A new standby waits this long after one is taken, not to slow down the mount it is starting.
const STANDBY_DELAY_MS = 2000;

export interface EmbeddedMounterOptions {
  /** Keep a mount process started ahead of need (see standby-mount.ts). */
  standby: boolean;
}

export function embeddedMounter(access: RepositoryAccess, logDir: string, options: EmbeddedMounterOptions): RepositoryMounter {
  let standby: StandbyMount | null = null;
  const standBy = () => {
    try {
      const [command, ...prefix] = selfCommand();
      standby = startStandbyMount(command!, prefix, logDir);
    } catch (error) {
      // Mounting says so, with the same reason, when it comes to it.
      log.debug(`no standby mount process: ${(error as Error).message}`);
    }
  };
  if (options.standby) standBy();
  return {
    clientName: () => 'the embedded CernVM-FS client',
    // It presents layers for overlay itself (--image-layers).
    rawWhiteouts: () => false,
    async mount(repository, target) {
      const spec = access.specs.get(repository);
      const source = spec?.serverUrl ? [spec.serverUrl, '--fqrn', repository, '--key', spec.key!] : [repository, '--cvmfs-config', access.configRoot];
      const [command, ...prefix] = selfCommand();
      const mountArgs = [...source, target, '--image-layers', '--cache', access.cacheDir, '--cache-size', String(access.cacheMb)];
      if (!access.passthrough) mountArgs.push('--no-passthrough');
      // A driver debugging its requests wants its mounts' requests too.
      if (log.level >= LogLevels.debug) mountArgs.push('--debug');
      const server =
        standby?.take({ args: mountArgs, logFile: mountLogFile(logDir, repository) }) ?? startMountProcess(command!, [...prefix, 'mount', ...mountArgs], logDir, repository);
      if (options.standby) setTimeout(standBy, STANDBY_DELAY_MS).unref();
      let exited: string | undefined;
      void server.ended.then(({ how }) => { exited = how; });
      const deadline = Date.now() + MOUNT_TIMEOUT_MS;
      while (!(await isMounted(target))) {
        if (exited) throw new Error(`mounting ${repository} failed (${exited}):\n${logTail(server.logFile)}`);
        if (Date.now() > deadline) {
          server.kill();
          throw new Error(`mounting ${repository} did not finish within ${MOUNT_TIMEOUT_MS / 1000} s:\n${logTail(server.logFile)}`);
        }
        // Often waited for by a container's start, so checked often: reading the mount table
        // costs well under a millisecond.
        await sleep(10);
      }
    },
    unmount: unmountRepository,
    isAlive: (target) => isServed(target),
    // Each mount keeps the directories it looked into, per repository (directories-in-use.ts).
    usedBefore: () => repositoriesWithDirectoriesInUse(access.cacheDir),
  };
}
