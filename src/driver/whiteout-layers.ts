import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AUFS_META_PREFIX, CATALOG_MARKER } from '../core/cvmfs/fuse-view.ts';
import { IMAGE_LAYERS_SUBTYPE } from '../core/cvmfs/mount-command.ts';
import { listMounts } from '../core/fs/mounts.ts';
import { makeSpecialFiles } from '../core/fs/special-files.ts';
import { readPathXattrs, writeTreeXattrs } from '../core/fs/xattr.ts';
import { KeyedLock } from '../core/keyed-lock.ts';
import { log } from '../core/log.ts';
import { OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX } from '../core/overlay/apply-layer.ts';
import type { LayerStore } from '../core/overlay/layer-store.ts';
import { RepositoryMounts } from './repository-mounts.ts';
import type { ExpandedChain } from './thin-layers.ts';

// A client that shows layers as CernVM-FS stores them (cvmfs2) shows deletions as `.wh.<name>`
// files, opaque directories as `.wh..wh..opq` files, and the `.cvmfscatalog` markers of nested
// catalogs, all of which overlay takes for ordinary files. Each such layer is stacked between
// two small local directories made from its names alone, never its files' content:
//  - above it, a whiteout at each of those names, so that none shows. The directories on the
//    way copy the layer's, since the topmost layer holding a directory decides its attributes;
//  - below it, a whiteout at <name> for each `.wh.<name>` and the opaque directories marked
//    opaque, so that they hide what the layers below hold, not what the layer itself holds.
// These are the names the embedded client's image-layer view converts or hides. A layer's path
// names its digest, so a layer never changes: its pair is made once, under home, and kept.

const WHITEOUTS_DIR = 'cvmfs-whiteouts';
const STAGING_PREFIX = '.building-';

/** A layer's pair under <home>/cvmfs-whiteouts/<key>, and which of the two hold anything. */
interface WhiteoutPair {
  key: string;
  above: boolean;
  below: boolean;
}

/** The parent of a path relative to a layer, '' being the layer's root. */
function parentOf(relPath: string): string {
  const parent = path.posix.dirname(relPath);
  return parent === '.' ? '' : parent;
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** `dirs` with every directory on their way, the root ('') included, parents first. */
function withAncestors(dirs: Iterable<string>): string[] {
  const all = new Set<string>(['']);
  for (let dir of dirs) {
    for (; dir !== '' && !all.has(dir); dir = parentOf(dir)) all.add(dir);
  }
  return [...all].sort((a, b) => a.length - b.length);
}

/**
 * The whiteout, opaque and catalog marker names in `layer`, by the directory holding them. Only
 * directories are listed (readdir reports types), so a client fetches no file content for this.
 */
async function findMarkers(layer: string): Promise<Map<string, string[]>> {
  const markers = new Map<string, string[]>();
  const pending = [''];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const entry of await fs.readdir(path.join(layer, dir), { withFileTypes: true })) {
      if (entry.name.startsWith(WHITEOUT_PREFIX) || entry.name === CATALOG_MARKER) {
        markers.set(dir, [...(markers.get(dir) ?? []), entry.name]);
      } else if (entry.isDirectory()) {
        pending.push(join(dir, entry.name));
      }
    }
  }
  return markers;
}

async function whiteoutsAt(root: string, relPaths: string[]): Promise<void> {
  await makeSpecialFiles(root, relPaths.map((relPath) => ({ relPath, type: 'char', major: 0, minor: 0 })));
}

/** The layer above `layer`: a whiteout over each marker, in directories that look like the layer's. */
async function buildAbove(layer: string, markers: Map<string, string[]>, root: string): Promise<void> {
  const dirs = withAncestors(markers.keys());
  const stats = new Map<string, Stats>();
  for (const dir of dirs) stats.set(dir, await fs.lstat(path.join(layer, dir)));
  await fs.mkdir(root);
  for (const dir of dirs.slice(1)) await fs.mkdir(path.join(root, dir));
  await whiteoutsAt(root, [...markers].flatMap(([dir, names]) => names.map((name) => join(dir, name))));
  for (const dir of dirs) {
    const stat = stats.get(dir)!;
    // chmod after chown, which may clear setuid/setgid bits.
    await fs.lchown(path.join(root, dir), stat.uid, stat.gid);
    await fs.chmod(path.join(root, dir), stat.mode & 0o7777);
  }
  const xattrs = await readPathXattrs(layer, dirs);
  // Overlay's own attributes would act on the copy instead of the layer (and never show anyway).
  for (const attrs of xattrs.values()) for (const name of attrs.keys()) if (name.startsWith('trusted.overlay.')) attrs.delete(name);
  await writeTreeXattrs(root, xattrs);
  // Children first: making entries in a directory changes its times.
  for (const dir of dirs.toReversed()) {
    const stat = stats.get(dir)!;
    await fs.utimes(path.join(root, dir), stat.atime, stat.mtime);
  }
}

/** The layer below: what the markers delete and hide in the layers further down. */
async function buildBelow(markers: Map<string, string[]>, root: string): Promise<{ deletions: number; opaque: number }> {
  const deleted: string[] = [];
  const opaque: string[] = [];
  for (const [dir, names] of markers) {
    for (const name of names) {
      if (name === OPAQUE_MARKER) opaque.push(dir);
      else if (name.startsWith(WHITEOUT_PREFIX) && !name.startsWith(AUFS_META_PREFIX)) deleted.push(join(dir, name.slice(WHITEOUT_PREFIX.length)));
    }
  }
  await fs.mkdir(root);
  for (const dir of withAncestors([...opaque, ...deleted.map(parentOf)]).slice(1)) await fs.mkdir(path.join(root, dir));
  await whiteoutsAt(root, deleted);
  await writeTreeXattrs(root, new Map(opaque.map((dir) => [dir, new Map([[OPAQUE_XATTR, Buffer.from('y')]])])));
  return { deletions: deleted.length, opaque: opaque.length };
}

async function hasEntries(dir: string): Promise<boolean> {
  return (await fs.readdir(dir)).length > 0;
}

export class WhiteoutLayers {
  private readonly store: LayerStore;
  private readonly showsRaw: (repository: string) => boolean;
  private readonly pairs = new Map<string, WhiteoutPair>();
  private readonly locks = new KeyedLock();

  /** `showsRaw` tells the repositories whose client shows their layers as stored. */
  constructor(store: LayerStore, showsRaw: (repository: string) => boolean) {
    this.store = store;
    this.showsRaw = showsRaw;
  }

  /** The lowers of `chain` with each raw repository layer between its pair; the repositories must be mounted. */
  async lowers(chain: ExpandedChain): Promise<string[]> {
    const lowers: string[] = [];
    const raw = await this.rawRepositories(chain.repositories.keys());
    for (const link of chain.lowers) {
      const layer = chain.repositoryLayers.get(link);
      if (!layer || !raw.has(layer.repository)) {
        lowers.push(link);
        continue;
      }
      const pair = await this.pair(layer.repository, layer.inside);
      if (pair.above) lowers.push(await this.store.externalLink(path.join(WHITEOUTS_DIR, pair.key, 'above')));
      lowers.push(link);
      if (pair.below) lowers.push(await this.store.externalLink(path.join(WHITEOUTS_DIR, pair.key, 'below')));
    }
    return lowers;
  }

  /**
   * The chain's repositories whose mounts show their layers raw. A mount that presents image
   * layers is taken as such whatever the client would be now: after a restart with another
   * --client the driver adopts mounts made before, and walking one of those would find no
   * markers and keep that as the layer's pair.
   */
  private async rawRepositories(repositories: Iterable<string>): Promise<Set<string>> {
    const raw = [...repositories].filter((repository) => this.showsRaw(repository));
    // The embedded client (the default) shows no layer raw: no mount table to read on its Gets.
    if (raw.length === 0) return new Set();
    const presentsLayers = new Set((await listMounts()).filter((mount) => mount.fsType === `fuse.${IMAGE_LAYERS_SUBTYPE}`).map((mount) => mount.mountPoint));
    const mountPoint = (repository: string) => path.join(this.store.home, RepositoryMounts.relativeMountPoint(repository));
    return new Set(raw.filter((repository) => !presentsLayers.has(mountPoint(repository))));
  }

  /** Makes the pairs of the raw layers `needs` names (repository → layer paths) ahead of use; they must be mounted. */
  async prepare(needs: ReadonlyMap<string, readonly string[]>): Promise<void> {
    for (const repository of await this.rawRepositories(needs.keys())) {
      for (const inside of needs.get(repository) ?? []) await this.pair(repository, inside);
    }
  }

  private async pair(repository: string, inside: string): Promise<WhiteoutPair> {
    const key = createHash('sha256').update(`${repository}/${inside}`).digest('hex');
    return this.locks.run(key, async () => {
      const known = this.pairs.get(key);
      if (known) return known;
      const dir = path.join(this.store.home, WHITEOUTS_DIR, key);
      if (!(await fs.stat(dir).then(() => true, () => false))) await this.build(repository, inside, dir);
      const pair = { key, above: await hasEntries(path.join(dir, 'above')), below: await hasEntries(path.join(dir, 'below')) };
      this.pairs.set(key, pair);
      return pair;
    });
  }

  /** Makes the pair in a staging directory renamed into place, so a crash never leaves half of one. */
  private async build(repository: string, inside: string, dir: string): Promise<void> {
    const started = Date.now();
    const staging = path.join(path.dirname(dir), `${STAGING_PREFIX}${path.basename(dir)}`);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging, { recursive: true, mode: 0o700 });
    try {
      const layer = path.join(this.store.home, RepositoryMounts.relativeMountPoint(repository), inside);
      const markers = await findMarkers(layer);
      await buildAbove(layer, markers, path.join(staging, 'above'));
      const { deletions, opaque } = await buildBelow(markers, path.join(staging, 'below'));
      await fs.rename(staging, dir);
      const hidden = [...markers.values()].reduce((sum, names) => sum + names.length, 0);
      log.info(`${repository}/${inside}: overlay whiteouts made in ${Date.now() - started} ms (${hidden} marker names hidden; below it ${deletions} deleted, ${opaque} made opaque)`);
    } catch (err) {
      await fs.rm(staging, { recursive: true, force: true });
      throw new Error(`making the whiteouts of ${repository}/${inside}: ${(err as Error).message}`);
    }
  }
}
