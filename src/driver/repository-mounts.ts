import fs from 'node:fs/promises';
import path from 'node:path';
import { log } from '../core/log.ts';
import { KeyedLock } from '../core/keyed-lock.ts';
import { isMountPoint } from '../core/fs/mounts.ts';

// CernVM-FS repositories mounted under <home>/cvmfs/<repository> while some mounted layer needs
// them: the first user mounts, the last one unmounts, so Get and Put stay symmetric (the
// upstream plugin never released a repository a container had used). The unmount waits a
// little: one `docker run` gets and puts layers three times, a mount takes a few hundred
// milliseconds, and a thin image just pulled has its repositories mounted for the container
// that usually follows.

/** How a repository gets mounted: the embedded client, or the real cvmfs2 where installed. */
export interface RepositoryMounter {
  /** The client that mounts `repository`, as the log names it. */
  clientName(repository: string): string;
  /**
   * Whether the client shows `repository` as it is stored, `.wh.*` files and `.cvmfscatalog`
   * markers as plain files (cvmfs2 does), rather than as image layers ready for overlay.
   */
  rawWhiteouts(repository: string): boolean;
  /** Mounts `repository` read-only at the empty directory `target`; resolves once it serves. */
  mount(repository: string, target: string): Promise<void>;
  /** Unmounts `target`, also when the process serving it is gone. */
  unmount(target: string): Promise<void>;
  /** Whether the mount at `target` still answers (a killed server leaves a dead one); changes nothing. */
  isAlive(target: string): Promise<boolean>;
  /** Repositories this client's mounts on this host used before, the most recent first; absent where it keeps no record. */
  usedBefore?(): Promise<string[]>;
}

export const REPOSITORY_MOUNT_DIR = 'cvmfs';

async function missingPaths(root: string, paths: readonly string[]): Promise<string[]> {
  // At once: each Get of a thin image checks all its layers.
  const found = await Promise.all(paths.map((inside) => fs.stat(path.join(root, inside)).then(() => true, () => false)));
  return paths.filter((_, index) => !found[index]);
}

/** How long a repository stays mounted after its last user left. */
export const DEFAULT_IDLE_UNMOUNT_MS = 60_000;

export class RepositoryMounts {
  private readonly root: string;
  private readonly mounter: RepositoryMounter;
  private readonly idleUnmountMs: number;
  private readonly users = new Map<string, number>();
  private readonly idleTimers = new Map<string, NodeJS.Timeout>();
  private readonly locks = new KeyedLock();
  private readonly preparing = new Set<Promise<void>>();

  constructor(home: string, mounter: RepositoryMounter, idleUnmountMs = DEFAULT_IDLE_UNMOUNT_MS) {
    this.root = path.join(home, REPOSITORY_MOUNT_DIR);
    this.mounter = mounter;
    this.idleUnmountMs = idleUnmountMs;
  }

  /** Mount point of `repository`, relative to home, as overlay lower paths are written. */
  static relativeMountPoint(repository: string): string {
    return path.join(REPOSITORY_MOUNT_DIR, repository);
  }

  private target(repository: string): string {
    return path.join(this.root, repository);
  }

  /**
   * Counts one more user of each repository, mounting those not yet mounted. `needs` names the
   * paths (relative to the repository root) the caller will use: a mount serves the revision it
   * started with, so paths published since then mean mounting the newest revision, which can
   * only happen while nobody uses the old one.
   */
  async acquire(needs: ReadonlyMap<string, readonly string[]>): Promise<void> {
    const acquired: string[] = [];
    try {
      for (const [repository, paths] of needs) {
        await this.locks.run(repository, async () => {
          clearTimeout(this.idleTimers.get(repository));
          this.idleTimers.delete(repository);
          const users = this.users.get(repository) ?? 0;
          const target = this.target(repository);
          if (!(await this.mounter.isAlive(target))) await this.mountFresh(repository, target);
          let missing = await missingPaths(target, paths);
          if (missing.length > 0 && users === 0) {
            log.info(`repository ${repository}: ${missing[0]} was published after it was mounted; mounting its newest revision`);
            await this.mounter.unmount(target);
            await this.mountFresh(repository, target);
            missing = await missingPaths(target, paths);
          }
          if (missing.length > 0) {
            throw new Error(users > 0
              ? `repository ${repository}: ${missing[0]} is newer than the revision its running containers use; it is picked up once they stop`
              : `repository ${repository} has no ${missing[0]}; was the layer published (make-thin), and is the server up to date?`);
          }
          this.users.set(repository, users + 1);
        });
        acquired.push(repository);
      }
    } catch (err) {
      await this.release(acquired);
      throw err;
    }
  }

  /**
   * Mounts what `needs` names ahead of its first use, runs `whileMounted`, and keeps the mounts
   * for the idle period: called while an image is pulled, so its first container finds the
   * repositories mounted. Failures are only logged; the Get that needs the repository reports them.
   */
  prepare(needs: ReadonlyMap<string, readonly string[]>, whileMounted: () => Promise<void>): void {
    if (this.idleUnmountMs === 0 || needs.size === 0) return;
    const preparation = this.acquire(needs).then(
      () => whileMounted().finally(() => this.release(needs.keys())),
    ).catch((err: Error) => log.info(`not prepared ahead of use: ${err.message}`));
    this.preparing.add(preparation);
    void preparation.finally(() => this.preparing.delete(preparation));
  }

  /** Mounts `repository` at `target`, clearing a dead mount left there first. */
  private async mountFresh(repository: string, target: string): Promise<void> {
    if (await isMountPoint(target)) {
      log.warn(`repository ${repository}: the mount at ${target} is dead (its server was killed); mounting it again`);
      await this.mounter.unmount(target);
    }
    await fs.mkdir(target, { recursive: true });
    log.info(`mounting repository ${repository} at ${target} with ${this.mounter.clientName(repository)}`);
    await this.mounter.mount(repository, target);
  }

  async release(repositories: Iterable<string>): Promise<void> {
    for (const repository of repositories) {
      await this.locks.run(repository, async () => {
        const users = (this.users.get(repository) ?? 0) - 1;
        if (users > 0) {
          this.users.set(repository, users);
          return;
        }
        this.users.delete(repository);
        if (this.idleUnmountMs === 0) return this.unmountIdle(repository);
        const timer = setTimeout(() => void this.locks.run(repository, () => this.unmountIdle(repository)), this.idleUnmountMs);
        timer.unref();
        this.idleTimers.set(repository, timer);
      });
    }
  }

  private async unmountIdle(repository: string): Promise<void> {
    this.idleTimers.delete(repository);
    if (this.users.has(repository)) return;
    const target = this.target(repository);
    if (await isMountPoint(target)) {
      log.info(`unmounting repository ${repository}: no mounted layer has used it for a while`);
      await this.mounter.unmount(target).catch((err: Error) => log.error(`unmounting ${target}: ${err.message}`));
    }
  }

  /** After a restart: counts users of mounts that outlived the previous process, mounting nothing. */
  adopt(repositories: Iterable<string>): void {
    for (const repository of repositories) this.users.set(repository, (this.users.get(repository) ?? 0) + 1);
  }

  /** Unmounts every repository now (dockerd's Cleanup). */
  async releaseAll(): Promise<void> {
    await Promise.all(this.preparing);
    const repositories = new Set([...this.users.keys(), ...this.idleTimers.keys()]);
    this.users.clear();
    for (const timer of this.idleTimers.values()) clearTimeout(timer);
    this.idleTimers.clear();
    for (const repository of repositories) await this.locks.run(repository, () => this.unmountIdle(repository));
  }
}
