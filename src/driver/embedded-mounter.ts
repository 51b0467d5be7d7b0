import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sea from 'node:sea';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupStaleMount, isMounted, isServed, unmount as unmountFuse } from '../core/fuse/mount.ts';
import { LogLevels } from 'consola';
import { log } from '../core/log.ts';
import type { RepositoryMounter } from './repository-mounts.ts';
import type { RepositoryAccess } from './repository-config.ts';

// The embedded CernVM-FS client: each repository is served by a `cvmfs-graphdriver mount`
// process of its own, like cvmfs2 serves its mounts. Started detached, it outlives a restart of
// a legacy plugin, so running containers keep their files; the restarted driver finds the
// mounts alive and adopts them.

const MOUNT_TIMEOUT_MS = 60_000;

/** How to run this same program again: the single executable, or Node with the entry script. */
function selfCommand(): string[] {
  return sea.isSea() ? [process.execPath] : [process.execPath, ...process.execArgv, process.argv[1]!];
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

export function embeddedMounter(access: RepositoryAccess, logDir: string): RepositoryMounter {
  return {
    name: 'the embedded CernVM-FS client',
    async mount(repository, target) {
      const spec = access.specs.get(repository);
      const source = spec?.serverUrl ? [spec.serverUrl, '--fqrn', repository, '--key', spec.key!] : [repository, '--cvmfs-config', access.configRoot];
      const [command, ...prefix] = selfCommand();
      const args = [...prefix, 'mount', ...source, target, '--image-layers', '--cache', access.cacheDir, '--cache-size', String(access.cacheMb)];
      // A driver debugging its requests wants its mounts' requests too.
      if (log.level >= LogLevels.debug) args.push('--debug');
      fs.mkdirSync(logDir, { recursive: true });
      const logFile = path.join(logDir, `${repository}.log`);
      const out = fs.openSync(logFile, 'a');
      const child = spawn(command!, args, { detached: true, stdio: ['ignore', out, out] });
      fs.closeSync(out);
      let exited: string | undefined;
      child.once('exit', (code, signal) => { exited = signal ?? `exit code ${code}`; });
      child.once('error', (err) => { exited = err.message; });
      child.unref();
      const deadline = Date.now() + MOUNT_TIMEOUT_MS;
      while (!(await isMounted(target))) {
        if (exited) throw new Error(`mounting ${repository} failed (${exited}):\n${tail(logFile)}`);
        if (Date.now() > deadline) {
          child.kill();
          throw new Error(`mounting ${repository} did not finish within ${MOUNT_TIMEOUT_MS / 1000} s:\n${tail(logFile)}`);
        }
        await sleep(50);
      }
    },
    unmount: async (target) => {
      if ((await cleanupStaleMount(target)) === 'alive') await unmountFuse(target);
    },
    isAlive: (target) => isServed(target),
  };
}
