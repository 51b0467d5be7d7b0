// Mounting and unmounting FUSE connections. Node cannot call mount(2): the connection's Perl
// helper (backing-files.ts) makes the call where it runs, or else the `mount` program from PATH
// does (util-linux on a host, busybox in the plugin's rootfs); unmounting goes through
// fs/mounts.ts.
// Nothing here stats or opens a path inside a FUSE mount synchronously: a mount whose server is
// hung (or is this process) would block the caller for good.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { unmount as unmountOrDetach } from '../fs/mounts.ts';
import { log } from '../log.ts';

export interface FuseMountOptions {
  /** Shown as the mount's source in /proc/mounts. */
  source: string;
  /** The type appears as `fuse.<subtype>`. */
  subtype: string;
}

/** A mount(2) the kernel refused (rather than a helper that could not make the call). */
export class MountRefused extends Error {}

/** What can mount a connection by mount(2) itself: the backing-file helper, holding it as its fd 3. */
export interface ConnectionMounter {
  /** Fails with MountRefused when the kernel refuses; with another error when it cannot make the call. */
  mount(source: string, target: string, type: string, data: string): Promise<void>;
}

/**
 * Mounts the FUSE connection open on `fd` (/dev/fuse) read-only at `mountpoint` (absolute) and
 * returns the connection's device number: by `mounter` where it can, else by the mount program,
 * to which the fd becomes fd 3 (`-i` keeps util-linux from handing `-t fuse` to mount.fuse3,
 * which would take the source for a program to run).
 */
export async function mountFuse(fd: number, mountpoint: string, options: FuseMountOptions, mounter?: ConnectionMounter): Promise<number> {
  for (const [name, value] of Object.entries(options)) {
    if (!/^[\w.@+-]+$/.test(value)) throw new Error(`FUSE mount ${name} ${JSON.stringify(value)} must be a plain word`);
  }
  const fsOptions = [
    `subtype=${options.subtype}`,
    'fd=3',
    'rootmode=40000',
    `user_id=${process.getuid?.() ?? 0}`,
    `group_id=${process.getgid?.() ?? 0}`,
    // Containers run as any user; the kernel checks permissions from the mode bits we report.
    'allow_other',
    'default_permissions',
  ].join(',');
  const byCall = mounter?.mount(options.source, mountpoint, 'fuse', fsOptions).then(
    () => true,
    (error: Error) => {
      if (error instanceof MountRefused) throw new Error(`mounting FUSE at ${mountpoint} with ${fsOptions} failed: ${error.message}`);
      log.debug(`fuse: mounting with the mount program (${error.message})`);
      return false;
    },
  );
  if (!(await byCall)) await mountByProgram(fd, mountpoint, options.source, `ro,${fsOptions}`);
  const mount = await findMount(mountpoint);
  if (!mount) throw new Error(`mount reported success but nothing is mounted at ${mountpoint}`);
  return mount.device;
}

async function mountByProgram(fd: number, mountpoint: string, source: string, mountOptions: string): Promise<void> {
  const args = ['-i', '-t', 'fuse', '-o', mountOptions, source, mountpoint];
  const child = spawn('mount', args, { stdio: ['ignore', 'ignore', 'pipe', fd] });
  const stderr: Buffer[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  const status = await new Promise<string | null>((resolve) => {
    child.on('error', (error) => resolve(`cannot run mount: ${error.message}`));
    child.on('close', (code, signal) => resolve(code === 0 ? null : `${signal ?? `exit ${code}`}`));
  });
  if (status !== null) {
    throw new Error(`mount ${args.join(' ')} failed (${status}): ${Buffer.concat(stderr).toString().trim() || 'no message'}`);
  }
}

interface MountInfo {
  mountpoint: string;
  fsType: string;
  /** The superblock's device number as the kernel numbers it, which names its fusectl directory. */
  device: number;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Reading /proc/self/mountinfo never touches the mounts themselves. */
function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 5) continue;
    const [major, minor] = fields[2]!.split(':').map(Number);
    // The kernel's own dev_t: the major number above 20 bits of minor.
    mounts.push({ mountpoint: unescapeMountField(fields[4]!), fsType: fields[fields.indexOf('-') + 1]!, device: major! * 2 ** 20 + minor! });
  }
  return mounts;
}

/** The topmost mount at `mountpoint`. */
async function findMount(mountpoint: string): Promise<MountInfo | null> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).findLast((m) => m.mountpoint === mountpoint) ?? null;
}

/** Whether something is mounted at `mountpoint` (an absolute path without symlinks). */
export async function isMounted(mountpoint: string): Promise<boolean> {
  return (await findMount(path.resolve(mountpoint))) !== null;
}

/**
 * Unmounts `mountpoint`; when files on it are still open, detaches it instead (`umount -l`):
 * the server keeps serving those files and its session ends when the last one is closed.
 */
export async function unmount(mountpoint: string): Promise<void> {
  const target = path.resolve(mountpoint);
  if (await findMount(target)) await unmountOrDetach(target);
}

export type StaleMountOutcome = 'not-mounted' | 'alive' | 'cleared';

/**
 * Clears a FUSE mount whose server is gone, so the mountpoint can be used again. A killed server
 * leaves "Transport endpoint is not connected" (ENOTCONN): the mount is simply unmounted. A server
 * that is stopped or stuck leaves calls hanging: its connection is aborted through fusectl first.
 * A mount whose server answers is left alone ('alive').
 */
export async function cleanupStaleMount(mountpoint: string, probeTimeoutMs = 2000): Promise<StaleMountOutcome> {
  const target = path.resolve(mountpoint);
  const mount = await findMount(target);
  if (!mount) return 'not-mounted';
  if (mount.fsType !== 'fuse' && !mount.fsType.startsWith('fuse.')) {
    throw new Error(`${target} is a ${mount.fsType} mount, not FUSE`);
  }
  const state = await probeServer(target, probeTimeoutMs);
  if (state === 'alive') return 'alive';
  if (state === 'hung') {
    log.warn(`fuse: the server of ${target} does not answer; aborting its connection`);
    abortConnection(mount.device);
  }
  await unmount(target);
  return 'cleared';
}

/** Whether a FUSE mount's server answers; changes nothing (cleanupStaleMount clears dead ones). */
export async function isServed(mountpoint: string, probeTimeoutMs = 2000): Promise<boolean> {
  const target = path.resolve(mountpoint);
  return (await findMount(target)) !== null && (await probeServer(target, probeTimeoutMs)) === 'alive';
}

/**
 * Asks the server for statfs, which the kernel never answers from its caches (a stat could be).
 * A hung call keeps one threadpool thread until the connection is aborted, which we do next.
 */
async function probeServer(mountpoint: string, timeoutMs: number): Promise<'alive' | 'dead' | 'hung'> {
  const answer = statfs(mountpoint).then(
    () => 'alive' as const,
    (error: NodeJS.ErrnoException) => (error.code === 'ENOTCONN' || error.code === 'ECONNABORTED' ? 'dead' : 'alive'),
  );
  return Promise.race([answer, sleep(timeoutMs, 'hung' as const, { ref: false })]);
}

/**
 * For a process that is exiting while it still serves `mountpoint`: detaches the mount and aborts
 * its connection, synchronously since nothing async runs any more. Node joins worker threads on
 * exit, and the device readers return from their blocking read only once the connection is gone
 * (a lazy detach alone leaves it up while some other process has a file open on it).
 */
export function detachOnExit(mountpoint: string, device: number): void {
  spawnSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
  try {
    abortConnection(device);
  } catch (error) {
    log.error(`fuse: cannot abort the connection of ${mountpoint}; exiting may hang: ${(error as Error).message}`);
  }
}

/**
 * Makes every pending and future request of the connection fail, through fusectl's `abort`.
 * Synchronous, for detachOnExit; it touches only /proc and fusectl, never a FUSE mount.
 */
function abortConnection(device: number): void {
  const existing = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).find((m) => m.fsType === 'fusectl');
  if (existing) return writeAbort(existing.mountpoint, device);
  const directory = mkdtempSync(path.join(tmpdir(), 'fusectl-'));
  try {
    const mounted = spawnSync('mount', ['-t', 'fusectl', 'fusectl', directory], { encoding: 'utf8' });
    if (mounted.status !== 0) throw new Error(`cannot mount fusectl to abort a FUSE connection: ${mounted.stderr?.trim() || mounted.error?.message}`);
    writeAbort(directory, device);
  } finally {
    spawnSync('umount', [directory], { stdio: 'ignore' });
    rmdirSync(directory);
  }
}

function writeAbort(fusectl: string, device: number): void {
  try {
    writeFileSync(path.join(fusectl, String(device), 'abort'), '1');
  } catch (error) {
    // No directory: the connection has ended already.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
