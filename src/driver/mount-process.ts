import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cleanupStaleMount, unmount } from '../core/fuse/mount.ts';

// Whichever client mounts a repository, it is a FUSE mount made by a process of its own: started
// detached, so that it outlives a restart of a legacy plugin, with its output appended to a log
// per repository that the driver quotes when the mount fails.

/** How long a client may take to mount a repository. */
export const MOUNT_TIMEOUT_MS = 60_000;

export interface MountProcess {
  logFile: string;
  /** Resolves when the process has ended. */
  ended: Promise<MountProcessEnd>;
  kill(): void;
}

/** The log of a repository's mount process. */
export function mountLogFile(logDir: string, repository: string): string {
  return path.join(logDir, `${repository}.log`);
}

/** How a mount process ended: its exit code (null for a signal or a failed start) and how. */
export type MountProcessEnd = { code: number | null; how: string };

/** Resolves when `child` has ended, however it ended. */
export function processEnded(child: ChildProcess): Promise<MountProcessEnd> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, how: signal ?? `exit code ${code}` }));
    child.once('error', (err) => resolve({ code: null, how: err.message }));
  });
}

export function startMountProcess(command: string, args: string[], logDir: string, repository: string): MountProcess {
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = mountLogFile(logDir, repository);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const ended = processEnded(child);
  child.unref();
  return { logFile, ended, kill: () => child.kill() };
}

/** The last lines of a mount's log, for an error message. */
export function logTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Unmounts a repository's FUSE mount, also when its server is gone; detached if still busy. */
export async function unmountRepository(target: string): Promise<void> {
  if ((await cleanupStaleMount(target)) === 'alive') await unmount(target);
}
