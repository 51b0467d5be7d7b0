// Serving a ReadOnlyFilesystem at a mountpoint: open /dev/fuse, mount it, read requests on
// a worker thread (booted while it mounts, or ahead of time) and answer them on the main thread
// until the kernel ends the session.
import { closeSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackingFiles } from './backing-files.ts';
import { prepareDeviceReader, type DeviceReader } from './device-reader.ts';
import type { ReadOnlyFilesystem } from './filesystem.ts';
import { detachOnExit, mountFuse, unmount } from './mount.ts';
import { MAX_READ } from './protocol.ts';
import { ReadBuffers } from './read-buffers.ts';
import { FuseSession } from './session.ts';
import { log } from '../log.ts';

export interface ServeOptions {
  /** Mount source shown in /proc/mounts; default "cvmfs-graphdriver". */
  source?: string;
  /** The mount type becomes `fuse.<subtype>`; default "cvmfs-graphdriver". */
  subtype?: string;
  /**
   * Readahead window of the mount in KiB. FUSE caps it at the 128 KiB the kernel offers in
   * INIT; a bigger window turns sequential reads into fewer, larger requests.
   */
  readaheadKb?: number;
  /** How long the kernel may take to send INIT after mounting; default 10 s. */
  initTimeoutMs?: number;
  /** Names of all directory lookup tables the device reader keeps (see device-reader.ts). */
  maxTableNames?: number;
  /**
   * Let the kernel read files that have backing files straight from them (FUSE passthrough)
   * where it can; default true. The mount then counts as one level of filesystem stacking, so an
   * overlay on it is as deep as the kernel allows (two) and nothing can stack on that overlay.
   */
  passthrough?: boolean;
}

export interface FuseServer {
  /** Absolute path of the mount. */
  readonly mountpoint: string;
  /**
   * Resolves when the kernel has ended the session: right after an unmount, or after a lazy
   * unmount once the last file open on the mount is closed.
   */
  readonly closed: Promise<void>;
  /** Unmounts, or detaches the mount if files on it are still open (see `closed`). */
  unmount(): Promise<void>;
  /** See FuseSession.buildTablesAhead. */
  buildTablesAhead(directories: readonly bigint[]): Promise<void>;
  /** See FuseSession.directoriesInUse. */
  readonly directoriesInUse: readonly bigint[];
}

// Exiting with a mount up would hang: Node joins the device readers, which are blocked in
// read(2) until the connection goes. One exit hook for all mounts (not one listener each).
const mountsToDetachOnExit = new Set<() => void>();
process.on('exit', () => {
  for (const detach of mountsToDetachOnExit) detach();
});

/** A connection to /dev/fuse with its reader booted, not mounted yet. */
interface FuseDevice {
  fd: number;
  reader: DeviceReader;
  readBuffers: ReadBuffers;
  /** Started ahead too, for a filesystem with backing files. */
  backingFiles?: BackingFiles;
}

function openFuseDevice(): FuseDevice {
  const fd = openSync('/dev/fuse', 'r+');
  return { fd, reader: prepareDeviceReader(fd), readBuffers: new ReadBuffers(MAX_READ) };
}

let deviceAhead: FuseDevice | null = null;

/**
 * Opens /dev/fuse, boots its reader and faults in its read buffers now, for this process's next
 * serveFilesystem: a process that will serve a mount it does not know yet (standby-mount) saves
 * that time later. Best effort: serveFilesystem reports what fails.
 */
export function prepareFuseDeviceAhead(): void {
  try {
    deviceAhead ??= openFuseDevice();
    deviceAhead.backingFiles ??= new BackingFiles(deviceAhead.fd);
    deviceAhead.readBuffers.prefault();
  } catch (error) {
    log.debug(`fuse: cannot open /dev/fuse ahead of mounting: ${(error as Error).message}`);
  }
}

/** Sets the mount's readahead through its backing device's sysfs entry; best effort. */
async function setReadahead(device: number, kilobytes: number): Promise<void> {
  const name = `${Math.floor(device / 2 ** 20)}:${device % 2 ** 20}`;
  await writeFile(`/sys/class/bdi/${name}/read_ahead_kb`, String(kilobytes)).catch((error: Error) => {
    log.debug(`fuse: cannot set the readahead of ${name}: ${error.message}`);
  });
}

/** Mounts `fs` read-only at `mountpoint` (an existing directory) and serves it. Needs root. */
export async function serveFilesystem(fs: ReadOnlyFilesystem, mountpoint: string, options: ServeOptions = {}): Promise<FuseServer> {
  const target = path.resolve(mountpoint);
  const { fd, reader, readBuffers, backingFiles } = deviceAhead ?? openFuseDevice();
  deviceAhead = null;
  const passthrough = fs.backingFile !== undefined && options.passthrough !== false;
  const helper = passthrough ? (backingFiles ?? new BackingFiles(fd)) : backingFiles;
  const session = new FuseSession(fd, fs, readBuffers, passthrough && helper ? helper : null);
  session.shareLookupTablesWith(reader);
  session.shareBackingFilesWith(reader);
  let device: number;
  try {
    device = await mountFuse(fd, target, { source: options.source ?? 'cvmfs-graphdriver', subtype: options.subtype ?? 'cvmfs-graphdriver' }, helper);
  } catch (error) {
    session.end();
    await reader.cancel();
    closeSync(fd);
    throw error;
  } finally {
    // Without passthrough the helper only mounts.
    if (!passthrough) helper?.stop();
  }
  const detach = (): void => {
    session.end();
    detachOnExit(target, device);
  };
  mountsToDetachOnExit.add(detach);
  const readerOptions = { ...session.readerOptions, ...(options.maxTableNames !== undefined && { maxTableNames: options.maxTableNames }) };
  const closed = reader.start(session.readerEvents, readerOptions).then(() => {
    mountsToDetachOnExit.delete(detach);
    session.end();
    closeSync(fd);
  });
  const initTimeoutMs = options.initTimeoutMs ?? 10_000;
  const started = await Promise.race([
    session.initialized.then(() => 'initialized' as const),
    closed.then(() => 'closed' as const),
    sleep(initTimeoutMs, 'timeout' as const, { ref: false }),
  ]);
  if (started !== 'initialized') {
    await unmount(target);
    throw new Error(`FUSE mount at ${target} did not start: ${started === 'closed' ? 'the kernel ended the session' : `no INIT within ${initTimeoutMs} ms`}`);
  }
  if (options.readaheadKb !== undefined) await setReadahead(device, options.readaheadKb);
  return {
    mountpoint: target,
    closed,
    unmount: () => unmount(target),
    buildTablesAhead: (directories) => session.buildTablesAhead(directories),
    get directoriesInUse() {
      return session.directoriesInUse;
    },
  };
}
