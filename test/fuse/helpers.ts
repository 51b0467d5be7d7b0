// Mounting test filesystems. The test process serves the mount, so it must never touch the mount
// with synchronous calls (its own main thread answers them: deadlock); every check runs in a
// separate process.
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReadOnlyFilesystem } from '../../src/core/fuse/filesystem.ts';
import { cleanupStaleMount } from '../../src/core/fuse/mount.ts';
import { serveFilesystem, type FuseServer, type ServeOptions } from '../../src/core/fuse/server.ts';
import { requireRoot, run, stopAfter, type RunResult } from '../helpers/process.ts';

/** A fresh empty directory to mount on, removed after the test once nothing is mounted there. */
export async function mountpointFor(t: TestContext): Promise<string> {
  const directory = await mkdtemp(path.join(tmpdir(), 'fuse-test-'));
  stopAfter(t, {
    async stop() {
      // Only a killed or stuck server leaves something here; this clears it either way.
      await cleanupStaleMount(directory);
      await rmdir(directory);
    },
  });
  return directory;
}

export interface TestMountOptions extends ServeOptions {
  /** Where to mount (from mountpointFor); a fresh directory when absent. */
  mountpoint?: string;
}

/** Serves `fs`; the test's after-hook unmounts it and waits for the session to end. */
export async function mountForTest(t: TestContext, fs: ReadOnlyFilesystem, options: TestMountOptions = {}): Promise<FuseServer> {
  requireRoot('the FUSE tests');
  const mountpoint = options.mountpoint ?? (await mountpointFor(t));
  const server = await serveFilesystem(fs, mountpoint, options);
  // stopAfter runs this before mountpointFor's cleanup (last registered, first stopped).
  stopAfter(t, {
    async stop() {
      await server.unmount();
      const ended = await Promise.race([server.closed.then(() => true), sleep(10_000, false, { ref: false })]);
      if (!ended) throw new Error(`the FUSE session at ${mountpoint} did not end after unmounting`);
    },
  });
  return server;
}

/** `sh -c script` in a child process; fails on a non-zero exit unless allowFail. */
export function sh(script: string, allowFail = false): Promise<RunResult> {
  return run('sh', ['-c', script], { allowFail });
}

/** Quotes a path for sh. */
export function q(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
