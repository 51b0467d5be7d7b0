import fs from 'node:fs/promises';
import path from 'node:path';
import { KeyedLock } from '../core/keyed-lock.ts';
import { log } from '../core/log.ts';
import { applyLayer } from '../core/overlay/apply-layer.ts';
import { overlayChanges } from '../core/overlay/changes.ts';
import { exportLayer } from '../core/overlay/export-layer.ts';
import { checkHostSupport, overlayFeatureOptions } from '../core/overlay/host-support.ts';
import { checkLayerId, LayerStore, type LayerKind } from '../core/overlay/layer-store.ts';
import { bindMount, isMountPoint, listMounts, mountOverlay, mountsBelow, prepareMounting, unmount } from '../core/fs/mounts.ts';
import { treeSize } from '../core/fs/walk.ts';
import { loadInitState, saveInitState } from './init-state.ts';
import { parseDriverOptions } from './options.ts';
import type { Change, InitRequest, LayerRequest } from './protocol.ts';
import { isRepositoryName, type RepositorySpec } from './repository-config.ts';
import { RepositoryMounts, type RepositoryMounter } from './repository-mounts.ts';
import { ThinLayers } from './thin-layers.ts';
import { WhiteoutLayers } from './whiteout-layers.ts';

// The graphdriver itself: overlay2's behaviour on overlay2's on-disk layout, with every piece of
// state on disk so that a restarted plugin (which dockerd never re-initialises) carries on.

const PAGE_SIZE = 4096;
/** At most this many repositories are mounted when the driver starts (see mountUsedBefore). */
const REPOSITORIES_MOUNTED_AT_START = 4;

// dockerd Puts a container's layer once it has created the container and Gets it again to start
// it, a few milliseconds later; it Puts the init layer and Removes it after the container ran.
// Each mount or unmount is a process (Node cannot call mount(2)), ~8-16 ms here, so a layer
// every holder has Put stays mounted this long: a Get in time takes the mount back, and Remove
// or the plugin stopping unmounts it at once.
const DEFAULT_UNMOUNT_DELAY_MS = 1000;

export interface DriverOptions {
  /** How long a layer stays mounted after its last Put; default a second. */
  unmountDelayMs?: number;
}

export interface ThinSupport {
  /** Mounts the CernVM-FS repositories thin layers read from. */
  mounter: RepositoryMounter;
  /**
   * Takes the repositories dockerd's storage options configure (at each Init, and on resuming
   * from the last one) and answers which repositories thin layers may name: undefined allows
   * any the mounter can mount. Absent: any, and the storage options configure none.
   */
  repositories?(fromStorageOptions: readonly RepositorySpec[]): ReadonlySet<string> | undefined;
  /** How long an unused repository stays mounted (default: a minute). */
  idleUnmountMs?: number;
}

interface Started {
  store: LayerStore;
  thin: ThinLayers;
  repositories: RepositoryMounts;
  whiteouts: WhiteoutLayers;
}

export class OverlayDriver {
  private readonly stateFile: string;
  private readonly thinSupport: ThinSupport;
  private readonly unmountDelayMs: number;
  private started: Started | undefined;
  private backingFs = '';
  private featureOptions: string[] = [];
  /** Outstanding Get calls per mounted layer. */
  private readonly mountRefs = new Map<string, number>();
  /** Repositories each mounted layer holds, released when it is unmounted. */
  private readonly heldRepositories = new Map<string, Set<string>>();
  /** Layers Put by every holder and still mounted, with the timer that unmounts them. */
  private readonly pendingUnmounts = new Map<string, NodeJS.Timeout>();
  private readonly locks = new KeyedLock();

  constructor(stateFile: string, thinSupport: ThinSupport, options: DriverOptions = {}) {
    this.stateFile = stateFile;
    this.thinSupport = thinSupport;
    this.unmountDelayMs = options.unmountDelayMs ?? DEFAULT_UNMOUNT_DELAY_MS;
  }

  /** Resumes after a plugin restart from the state the last Init left. */
  async resume(): Promise<void> {
    const state = await loadInitState(this.stateFile);
    if (!state) return;
    await this.start(state);
    log.info(`resumed with home ${state.Home} from ${this.stateFile}`);
  }

  async init(request: InitRequest): Promise<void> {
    await this.start(request);
    await saveInitState(this.stateFile, request);
    log.info(`initialised: home ${request.Home}, backing filesystem ${this.backingFs}`);
  }

  private async start(request: InitRequest): Promise<void> {
    if (!request.Home || !path.isAbsolute(request.Home)) throw new Error(`Init needs an absolute Home, got ${JSON.stringify(request.Home)}`);
    if ((request.UIDMaps?.length ?? 0) > 0 || (request.GIDMaps?.length ?? 0) > 0) {
      throw new Error('user namespace remapping (userns-remap) is not supported; start dockerd without it');
    }
    const options = parseDriverOptions(request.Opts);
    // Counted below as held by the previous dockerd otherwise.
    if (this.started) await this.unmountPending();
    await fs.mkdir(request.Home, { recursive: true, mode: 0o710 });
    this.backingFs = await checkHostSupport(request.Home);
    // The first Get would otherwise wait for it: a container's start, often.
    prepareMounting();
    this.featureOptions = await overlayFeatureOptions();
    const store = new LayerStore(request.Home);
    await store.open();
    const thin = new ThinLayers(store, this.thinSupport.repositories?.(options.repositories));
    const repositories = new RepositoryMounts(request.Home, this.thinSupport.mounter, this.thinSupport.idleUnmountMs);
    const whiteouts = new WhiteoutLayers(store, (repository) => this.thinSupport.mounter.rawWhiteouts(repository));
    this.started = { store, thin, repositories, whiteouts };
    this.mountRefs.clear();
    this.heldRepositories.clear();
    // Layers still mounted were handed out by the previous process; each counts as one Get,
    // and holds the repositories its chain reads from.
    for (const mount of await listMounts()) {
      const match = mount.mountPoint.startsWith(`${request.Home}/`) && /^([^/]+)\/merged$/.exec(mount.mountPoint.slice(request.Home.length + 1));
      if (!match) continue;
      const id = match[1]!;
      this.mountRefs.set(id, 1);
      const chain = await thin.expand(await this.mountedChainLinks(store, id)).catch(() => undefined);
      if (chain && chain.repositories.size > 0) {
        const held = new Set(chain.repositories.keys());
        repositories.adopt(held);
        this.heldRepositories.set(id, held);
      }
    }
    await this.mountUsedBefore(thin, repositories);
  }

  /**
   * Mounts ahead, for the idle period, the repositories this host's mounts used most recently:
   * a driver that starts (with the host, or after an upgrade) is often asked for their images
   * again right away, by restart policies or the next job, and the first container of a thin
   * image otherwise waits for its repository's mount and lookup tables.
   */
  private async mountUsedBefore(thin: ThinLayers, repositories: RepositoryMounts): Promise<void> {
    const used = (await this.thinSupport.mounter.usedBefore?.().catch((error: Error) => {
      log.warn(`cannot tell which repositories were used here before: ${error.message}`);
      return [];
    })) ?? [];
    // The names come from file names in the cache; one that is no repository name is no mount point either.
    const wanted = used.filter((repository) => isRepositoryName(repository) && thin.allows(repository)).slice(0, REPOSITORIES_MOUNTED_AT_START);
    if (wanted.length === 0) return;
    log.info(`mounting ahead of use the repositories used here most recently: ${wanted.join(', ')}`);
    for (const repository of wanted) repositories.prepare(new Map([[repository, []]]), async () => {});
  }

  private parts(): Started {
    if (!this.started) throw new Error('the driver has not been initialised: restart dockerd so that it sends Init');
    return this.started;
  }

  private layers(): LayerStore {
    return this.parts().store;
  }

  /** Links a mount of `id` stacks: its lowers, and for an image layer its own diff on top. */
  private async mountedChainLinks(store: LayerStore, id: string): Promise<string[]> {
    const lowers = await store.lowerLinks(id);
    return (await store.kind(id)) === 'rw' ? lowers : [`l/${await store.linkName(id)}`, ...lowers];
  }

  async create(request: LayerRequest, kind: LayerKind): Promise<void> {
    const id = checkLayerId(request.ID);
    if (request.StorageOpt && Object.keys(request.StorageOpt).length > 0) {
      throw new Error(`layer ${id}: storage options (${Object.keys(request.StorageOpt).join(', ')}) are not supported`);
    }
    await this.locks.run(id, () => this.layers().create(id, request.Parent || undefined, kind));
  }

  async remove(request: LayerRequest): Promise<void> {
    const id = checkLayerId(request.ID);
    await this.locks.run(id, async () => {
      const { store, thin } = this.parts();
      clearTimeout(this.pendingUnmounts.get(id));
      this.pendingUnmounts.delete(id);
      await store.remove(id);
      this.mountRefs.delete(id);
      thin.forget(id);
      await this.releaseRepositories(id);
    });
  }

  private async releaseRepositories(id: string): Promise<void> {
    const held = this.heldRepositories.get(id);
    if (!held) return;
    this.heldRepositories.delete(id);
    await this.parts().repositories.release(held);
  }

  async exists(request: LayerRequest): Promise<boolean> {
    return this.layers().exists(checkLayerId(request.ID));
  }

  async get(request: LayerRequest): Promise<string> {
    const id = checkLayerId(request.ID);
    return this.locks.run(id, async () => {
      const { store, thin, repositories, whiteouts } = this.parts();
      if (!(await store.exists(id))) throw new Error(`layer ${id} does not exist`);
      // A layer with nothing below is its own diff, unmounted; for a thin layer that is what
      // docker save and push read, so only thin.json travels.
      if ((await store.lowerLinks(id)).length === 0) return store.diffDir(id);
      const refs = this.mountRefs.get(id) ?? 0;
      if (refs === 0 && !(await this.takeBackMount(id))) {
        const kind = await store.kind(id);
        const chain = await thin.expand(await this.mountedChainLinks(store, id));
        await repositories.acquire(chain.repositories);
        const held = new Set(chain.repositories.keys());
        try {
          await this.mount(id, await whiteouts.lowers(chain), kind);
        } catch (err) {
          await repositories.release(held);
          throw err;
        }
        if (held.size > 0) this.heldRepositories.set(id, held);
      }
      this.mountRefs.set(id, refs + 1);
      return store.mergedDir(id);
    });
  }

  /**
   * Mounts the overlay of `id`. An image layer whose expanded chain is a single directory (a
   * thin layer of one repository layer, say) cannot be an overlay without an upper dir: that
   * directory is bind-mounted instead, so Put and Remove treat it like any other mount.
   */
  private async mount(id: string, lowers: string[], kind: LayerKind): Promise<void> {
    const store = this.layers();
    if (kind === 'ro' && lowers.length < 2) {
      if (lowers.length === 0) throw new Error(`layer ${id} has no content to mount (a thin image without layers?)`);
      return bindMount(lowers[0]!, store.mergedDir(id), store.home);
    }
    const options = kind === 'rw'
      ? [`lowerdir=${lowers.join(':')}`, `upperdir=${id}/diff`, `workdir=${id}/work`]
      // Image layers are mounted read-only with their own diff as the top lower: dockerd only
      // reads them (docker save), and no upper dir means no clash with containers above them.
      : [`lowerdir=${lowers.join(':')}`];
    const optionText = [...options, ...this.featureOptions].join(',');
    if (optionText.length >= PAGE_SIZE) {
      throw new Error(`layer ${id}: overlay mount options are ${optionText.length} bytes, over the kernel's limit of ${PAGE_SIZE - 1}`);
    }
    await mountOverlay(optionText, store.mergedDir(id), store.home, { readOnly: kind !== 'rw' });
  }

  async put(request: LayerRequest): Promise<void> {
    const id = checkLayerId(request.ID);
    await this.locks.run(id, async () => {
      const refs = this.mountRefs.get(id) ?? 0;
      if (refs > 1) {
        this.mountRefs.set(id, refs - 1);
        return;
      }
      this.mountRefs.delete(id);
      if (this.unmountDelayMs === 0 || refs === 0) return this.unmountNow(id);
      clearTimeout(this.pendingUnmounts.get(id));
      const timer = setTimeout(() => {
        void this.locks
          .run(id, async () => {
            // Taken back by a Get (or removed) while this waited for the lock.
            if (this.pendingUnmounts.get(id) === timer) await this.unmountNow(id);
          })
          .catch((err: Error) => log.warn(`layer ${id}: unmounting after its last Put failed: ${err.message}`));
      }, this.unmountDelayMs);
      timer.unref();
      this.pendingUnmounts.set(id, timer);
    });
  }

  /** Takes back a layer Put a moment ago if it is still mounted; under the layer's lock. */
  private async takeBackMount(id: string): Promise<boolean> {
    const timer = this.pendingUnmounts.get(id);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this.pendingUnmounts.delete(id);
    if (await isMountPoint(this.layers().mergedDir(id))) return true;
    // Unmounted behind our back: mounted afresh, holding its repositories anew.
    await this.releaseRepositories(id);
    return false;
  }

  /** Unmounts a layer nobody holds and releases its repositories; under the layer's lock. */
  private async unmountNow(id: string): Promise<void> {
    clearTimeout(this.pendingUnmounts.get(id));
    this.pendingUnmounts.delete(id);
    const merged = this.layers().mergedDir(id);
    if (await isMountPoint(merged)) await unmount(merged);
    await this.releaseRepositories(id);
  }

  /** Unmounts now the layers waiting out their delay after the last Put: the plugin is stopping. */
  async unmountPending(): Promise<void> {
    for (const id of [...this.pendingUnmounts.keys()]) await this.locks.run(id, () => this.unmountNow(id));
  }

  async status(): Promise<[string, string][]> {
    const store = this.layers();
    return [
      ['Backing Filesystem', this.backingFs],
      ['Supports d_type', 'true'],
      ['Native Overlay Diff', 'true'],
      ['userxattr', 'false'],
      ['Layers', String((await store.ids()).length)],
    ];
  }

  async metadata(request: LayerRequest): Promise<Record<string, string>> {
    const id = checkLayerId(request.ID);
    const store = this.layers();
    if (!(await store.exists(id))) throw new Error(`layer ${id} does not exist`);
    const metadata: Record<string, string> = {
      WorkDir: store.workDir(id),
      MergedDir: store.mergedDir(id),
      UpperDir: store.diffDir(id),
    };
    const lowers = await store.lowerDiffDirs(id);
    if (lowers.length > 0) metadata.LowerDir = lowers.join(':');
    return metadata;
  }

  async cleanup(): Promise<void> {
    if (!this.started) return;
    const { store, repositories } = this.started;
    for (const timer of this.pendingUnmounts.values()) clearTimeout(timer);
    this.pendingUnmounts.clear();
    // Overlays first: they hold the repository mounts below them busy.
    for (const mountPoint of await mountsBelow(store.home)) {
      if (mountPoint.endsWith('/merged')) await unmount(mountPoint);
    }
    this.mountRefs.clear();
    this.heldRepositories.clear();
    await repositories.releaseAll();
    for (const mountPoint of await mountsBelow(store.home)) await unmount(mountPoint);
    await store.deleted();
  }

  /** Checks the parent dockerd names is the layer's own, the only case overlay2 diffs natively. */
  private async checkParent(id: string, parent: string | undefined): Promise<void> {
    const actual = await this.layers().parent(id);
    if ((parent ?? '') !== actual) {
      throw new Error(`layer ${id}: diff against ${parent || 'nothing'} requested, but its parent is ${actual || 'nothing'}`);
    }
  }

  async diff(request: LayerRequest, out: NodeJS.WritableStream): Promise<void> {
    const id = checkLayerId(request.ID);
    await this.checkParent(id, request.Parent);
    await exportLayer(this.layers().diffDir(id), out);
  }

  async changes(request: LayerRequest): Promise<Change[]> {
    const id = checkLayerId(request.ID);
    await this.checkParent(id, request.Parent);
    const { store, thin, repositories, whiteouts } = this.parts();
    // Compared with what the container sees below it, thin layers expanded; dockerd asks for
    // this of stopped containers too, so the repositories are held for the walk.
    const chain = await thin.expand(await store.lowerLinks(id));
    await repositories.acquire(chain.repositories);
    try {
      const lowers = await whiteouts.lowers(chain);
      return await overlayChanges(store.diffDir(id), lowers.map((link) => path.join(store.home, link)));
    } finally {
      await repositories.release(chain.repositories.keys());
    }
  }

  async diffSize(request: LayerRequest): Promise<number> {
    const id = checkLayerId(request.ID);
    await this.checkParent(id, request.Parent);
    return treeSize(this.layers().diffDir(id));
  }

  async applyDiff(id: string, parent: string, body: AsyncIterable<Buffer>): Promise<number> {
    checkLayerId(id);
    return this.locks.run(id, async () => {
      await this.checkParent(id, parent);
      const store = this.layers();
      const staging = await store.beginApply(id);
      try {
        await applyLayer(body, staging);
        await store.commitApply(id);
      } catch (err) {
        await store.abortApply(id);
        throw new Error(`applying layer ${id}: ${(err as Error).message}`);
      }
      // A broken thin.json is reported when the image is loaded, but fails only its use (Get).
      // A good one has its repositories mounted (and raw layers their whiteouts made) while
      // dockerd finishes the pull.
      const { thin, repositories, whiteouts } = this.parts();
      await thin.needs(id).then((needs) => repositories.prepare(needs, () => whiteouts.prepare(needs)), (err: Error) => log.warn(err.message));
      return treeSize(store.diffDir(id));
    });
  }
}
