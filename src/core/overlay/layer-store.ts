import crypto from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { mountsBelow, unmount } from '../fs/mounts.ts';
import { log } from '../log.ts';

// The on-disk layout of Docker's overlay2 driver: <home>/<id>/{diff,work,merged,link,lower}
// and short links <home>/l/<link> -> ../<id>/diff. Lower chains name layers by those short
// links, relative to <home>, so the mount options of a 125-layer image stay well under a page
// and the home path (which may contain ':' or ',') never appears in them.
//
// Creating and removing a layer, starting and ending the unpacking of its diff, reading its
// few-byte files and its short links take synchronous calls of microseconds each: every call
// through libuv's thread pool costs ~0.3–1 ms on a small VM, and docker run creates and mounts
// two layers before its container starts (~20 such calls).

export type LayerKind = 'ro' | 'rw';

/** Overlay accepts at most this many lower directories (overlay2's maxDepth). */
export const MAX_LOWER_DEPTH = 128;

const LINK_DIR = 'l';
const LAYER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const STAGING_PREFIX = '.creating-';
const APPLYING_DIR = 'diff.applying';

export class LayerError extends Error {}

export function checkLayerId(id: string | undefined): string {
  if (!id || !LAYER_ID.test(id)) throw new LayerError(`invalid layer id ${JSON.stringify(id)}`);
  return id;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => BASE32[b & 31]).join('');
}

function randomLinkName(): string {
  // 12 base32 characters: 60 random bits, short enough for 128 lowers in one page of options.
  return base32(crypto.randomBytes(12));
}

async function exists(p: string): Promise<boolean> {
  return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}

export class LayerStore {
  readonly home: string;
  /** Removed layers' trees being deleted, one after another, after their Remove was answered. */
  #deleting: Promise<void> = Promise.resolve();

  constructor(home: string) {
    this.home = home;
  }

  layerDir(id: string): string {
    return path.join(this.home, checkLayerId(id));
  }
  diffDir(id: string): string {
    return path.join(this.layerDir(id), 'diff');
  }
  workDir(id: string): string {
    return path.join(this.layerDir(id), 'work');
  }
  mergedDir(id: string): string {
    return path.join(this.layerDir(id), 'merged');
  }

  /** Creates the home and removes what an interrupted create or remove left behind. */
  async open(): Promise<void> {
    await fs.mkdir(path.join(this.home, LINK_DIR), { recursive: true, mode: 0o700 });
    for (const name of await fs.readdir(this.home)) {
      if (name.startsWith(STAGING_PREFIX)) await this.removeTree(path.join(this.home, name));
    }
    for (const id of await this.ids()) {
      const applying = path.join(this.layerDir(id), APPLYING_DIR);
      if (await exists(applying)) await this.removeTree(applying);
    }
    const linkDir = path.join(this.home, LINK_DIR);
    for (const name of await fs.readdir(linkDir)) {
      const link = path.join(linkDir, name);
      if (!(await fs.stat(link).then(() => true, () => false))) await fs.rm(link, { force: true });
    }
  }

  async exists(id: string): Promise<boolean> {
    return exists(this.layerDir(id));
  }

  async kind(id: string): Promise<LayerKind> {
    const text = await this.readLayerFile(id, 'kind');
    return text === 'rw' ? 'rw' : 'ro';
  }

  async parent(id: string): Promise<string> {
    return this.readLayerFile(id, 'parent');
  }

  /** Short link names of the lower layers, topmost first. */
  async lowerLinks(id: string): Promise<string[]> {
    const text = await this.readLayerFile(id, 'lower').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    return text ? text.split(':') : [];
  }

  /** The layer a short link of a lower chain names. */
  async layerOfLink(link: string): Promise<string> {
    const target = readlinkSync(path.join(this.home, link));
    const match = /^\.\.\/([^/]+)\/diff$/.exec(target);
    if (!match) throw new LayerError(`${link} points at ${target}, not at a layer`);
    return match[1]!;
  }

  /**
   * A short link (relative to home, like the lower chain's own) to a directory below home that
   * is not a layer, such as a layer dir inside a mounted repository. Its name derives from the
   * target, so the same target always gets the same link.
   */
  async externalLink(targetBelowHome: string): Promise<string> {
    // 'X' keeps these apart from the random 12-character names of layers.
    const name = `X${base32(crypto.createHash('sha256').update(targetBelowHome).digest().subarray(0, 11))}`;
    const link = path.join(this.home, LINK_DIR, name);
    const wanted = path.relative(path.dirname(link), path.join(this.home, targetBelowHome));
    // Synchronous, so that two Gets expanding the same thin layer cannot interleave here.
    let current: string | undefined;
    try {
      current = readlinkSync(link);
    } catch {
      current = undefined;
    }
    if (current !== wanted) {
      rmSync(link, { force: true });
      symlinkSync(wanted, link);
    }
    return `${LINK_DIR}/${name}`;
  }

  async linkName(id: string): Promise<string> {
    return this.readLayerFile(id, 'link');
  }

  /** Absolute diff directories of the lower layers, topmost first. */
  async lowerDiffDirs(id: string): Promise<string[]> {
    const links = await this.lowerLinks(id);
    return Promise.all(links.map((link) => fs.realpath(path.join(this.home, link))));
  }

  async create(id: string, parent: string | undefined, kind: LayerKind): Promise<void> {
    checkLayerId(id);
    if (await this.exists(id)) throw new LayerError(`layer ${id} already exists`);
    let lower = '';
    if (parent) {
      if (!(await this.exists(parent))) throw new LayerError(`parent layer ${parent} of ${id} does not exist`);
      const parentLowers = await this.lowerLinks(parent);
      if (parentLowers.length + 1 > MAX_LOWER_DEPTH) {
        throw new LayerError(`layer ${id} would have ${parentLowers.length + 1} lower layers; overlay allows ${MAX_LOWER_DEPTH}`);
      }
      lower = [`${LINK_DIR}/${await this.linkName(parent)}`, ...parentLowers].join(':');
    }
    // Built under a staging name and renamed, so a crash never leaves a half-made layer.
    const staging = path.join(this.home, `${STAGING_PREFIX}${id}`);
    mkdirSync(staging, { mode: 0o700 });
    const link = randomLinkName();
    mkdirSync(path.join(staging, 'diff'), { mode: 0o755 });
    chmodSync(path.join(staging, 'diff'), 0o755);
    mkdirSync(path.join(staging, 'work'), { mode: 0o700 });
    mkdirSync(path.join(staging, 'merged'), { mode: 0o700 });
    writeFileSync(path.join(staging, 'link'), link);
    writeFileSync(path.join(staging, 'kind'), kind);
    writeFileSync(path.join(staging, 'parent'), parent ?? '');
    if (lower) writeFileSync(path.join(staging, 'lower'), lower);
    renameSync(staging, this.layerDir(id));
    symlinkSync(`../${id}/diff`, path.join(this.home, LINK_DIR, link));
  }

  async remove(id: string): Promise<void> {
    const dir = this.layerDir(id);
    if (!(await exists(dir))) return;
    const link = await this.linkName(id).catch(() => '');
    if (link) rmSync(path.join(this.home, LINK_DIR, link), { force: true });
    // Renamed first so that a crash mid-way leaves a staging dir that open() finishes removing.
    const doomed = path.join(this.home, `${STAGING_PREFIX}${id}-${crypto.randomBytes(4).toString('hex')}`);
    for (const mountPoint of await mountsBelow(dir)) await unmount(mountPoint);
    renameSync(dir, doomed);
    // Deleting the files can wait: dockerd waits for Remove (a `docker run --rm` returns only
    // after it), and the layer is gone once renamed. A crash meanwhile leaves it to open().
    this.#deleting = this.#deleting.then(() => this.removeTree(doomed)).catch((err: Error) => log.warn(`deleting the files of removed layer ${id}: ${err.message}; they go when the driver next starts`));
  }

  /** Resolves once the files of every layer removed so far are deleted. */
  deleted(): Promise<void> {
    return this.#deleting;
  }

  /**
   * A layer's content is unpacked beside its (empty) diff dir and swapped in whole, so a failed
   * or killed ApplyDiff never leaves half a layer behind.
   */
  async beginApply(id: string): Promise<string> {
    const staging = path.join(this.layerDir(id), APPLYING_DIR);
    if (await exists(staging)) await this.removeTree(staging);
    mkdirSync(staging, { mode: 0o755 });
    chmodSync(staging, 0o755);
    return staging;
  }

  async commitApply(id: string): Promise<void> {
    const diff = this.diffDir(id);
    if (readdirSync(diff).length > 0) throw new LayerError(`layer ${id} already has content; dockerd applies a diff only once`);
    // rename(2) replaces an empty directory atomically.
    renameSync(path.join(this.layerDir(id), APPLYING_DIR), diff);
  }

  async abortApply(id: string): Promise<void> {
    await this.removeTree(path.join(this.layerDir(id), APPLYING_DIR));
  }

  /** Layer ids present, for status and for cleanup. */
  async ids(): Promise<string[]> {
    const names = (await fs.readdir(this.home)).filter((name) => name !== LINK_DIR && !name.startsWith(STAGING_PREFIX) && LAYER_ID.test(name));
    // Home also holds what is not a layer (the repository mounts): a layer has its link file.
    const isLayer = await Promise.all(names.map((name) => exists(path.join(this.home, name, 'link'))));
    return names.filter((_, index) => isLayer[index]);
  }

  private async readLayerFile(id: string, name: string): Promise<string> {
    return readFileSync(path.join(this.layerDir(id), name), 'utf8').trim();
  }

  private async removeTree(dir: string): Promise<void> {
    // fs.rm would descend into anything still mounted below and delete the mounted content.
    for (const mountPoint of await mountsBelow(dir)) await unmount(mountPoint);
    if ((await mountsBelow(dir)).length > 0) throw new LayerError(`cannot remove ${dir}: something is still mounted below it`);
    await fs.rm(dir, { recursive: true, force: true });
  }
}
