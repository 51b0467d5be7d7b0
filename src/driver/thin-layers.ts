import fs from 'node:fs/promises';
import path from 'node:path';
import type { LayerStore } from '../core/overlay/layer-store.ts';
import { parseCvmfsUrl, parseThinDescriptor, THIN_DESCRIPTOR_NAME, type ThinDescriptor } from '../core/thin-descriptor.ts';
import { RepositoryMounts } from './repository-mounts.ts';

// A layer whose root holds thin.json stands for the layers that file names in CernVM-FS. When a
// layer above it is mounted, its place in the lower chain is taken by those repository
// directories, topmost first; the thin.json layer itself never shows in a container.

export interface ExpandedChain {
  /** lowerdir entries relative to home, topmost first. */
  lowers: string[];
  /** Repositories the chain reads from, with the layer paths it needs in each; they must be mounted before the overlay. */
  repositories: Map<string, string[]>;
  /** The lowers that are repository layer dirs, with the repository and path inside it each stands for. */
  repositoryLayers: Map<string, { repository: string; inside: string }>;
}

/** A repository layer a thin layer stands for, with the short link that stands for it in a lower chain. */
interface RepositoryLayerLink {
  layerLink: string;
  repository: string;
  inside: string;
}

export class ThinLayers {
  private readonly store: LayerStore;
  /** Which repositories this driver may mount; undefined allows any. */
  private readonly allowed: ReadonlySet<string> | undefined;
  /** Layers never change after ApplyDiff, so whether one is thin is asked of the disk once. */
  private readonly descriptors = new Map<string, ThinDescriptor | null>();
  // A Get expands its whole chain, and each file call is a trip through libuv's thread pool
  // (~0.5–1 ms on a small VM): a thin layer's links, which never change, are resolved once.
  /** The layer each short link of a chain points at. */
  private readonly layersByLink = new Map<string, string>();
  /** Per thin layer: its repository layers, topmost first. */
  private readonly expansions = new Map<string, RepositoryLayerLink[]>();

  constructor(store: LayerStore, allowedRepositories?: ReadonlySet<string>) {
    this.store = store;
    this.allowed = allowedRepositories;
  }

  /** The layer's descriptor, or null for an ordinary layer. Throws if thin.json is invalid. */
  async descriptor(id: string): Promise<ThinDescriptor | null> {
    const known = this.descriptors.get(id);
    if (known !== undefined) return known;
    const file = path.join(this.store.diffDir(id), THIN_DESCRIPTOR_NAME);
    const stat = await fs.lstat(file).catch(() => undefined);
    let descriptor: ThinDescriptor | null = null;
    if (stat?.isFile()) {
      try {
        descriptor = parseThinDescriptor(await fs.readFile(file));
      } catch (err) {
        throw new Error(`layer ${id} is a thin image layer with a bad ${THIN_DESCRIPTOR_NAME}: ${(err as Error).message}`);
      }
    }
    this.descriptors.set(id, descriptor);
    return descriptor;
  }

  forget(id: string): void {
    this.descriptors.delete(id);
    this.expansions.delete(id);
    for (const [link, layer] of this.layersByLink) if (layer === id) this.layersByLink.delete(link);
  }

  /** The lower chain of `links` (short links, topmost first) with every thin layer expanded. */
  async expand(links: string[]): Promise<ExpandedChain> {
    const lowers: string[] = [];
    const repositories = new Map<string, string[]>();
    const repositoryLayers = new Map<string, { repository: string; inside: string }>();
    for (const link of links) {
      const expansion = await this.expansion(await this.layerOfLink(link));
      if (!expansion) {
        lowers.push(link);
        continue;
      }
      for (const { layerLink, repository, inside } of expansion) {
        repositories.set(repository, [...(repositories.get(repository) ?? []), inside]);
        lowers.push(layerLink);
        repositoryLayers.set(layerLink, { repository, inside });
      }
    }
    return { lowers, repositories, repositoryLayers };
  }

  private async layerOfLink(link: string): Promise<string> {
    const known = this.layersByLink.get(link);
    if (known !== undefined) return known;
    const id = await this.store.layerOfLink(link);
    this.layersByLink.set(link, id);
    return id;
  }

  /** The repository layers thin layer `id` stands for, with their links; null for an ordinary layer. */
  private async expansion(id: string): Promise<RepositoryLayerLink[] | null> {
    const known = this.expansions.get(id);
    if (known) return known;
    const descriptor = await this.descriptor(id);
    if (!descriptor) return null;
    const expansion: RepositoryLayerLink[] = [];
    for (const { repository, inside } of this.repositoryLayers(id, descriptor).reverse()) {
      const layerLink = await this.store.externalLink(path.join(RepositoryMounts.relativeMountPoint(repository), inside));
      expansion.push({ layerLink, repository, inside });
    }
    this.expansions.set(id, expansion);
    return expansion;
  }

  /** What the thin layer `id` needs mounted: each repository with the layer paths it reads there. */
  async needs(id: string): Promise<Map<string, string[]>> {
    const needs = new Map<string, string[]>();
    const descriptor = await this.descriptor(id);
    if (!descriptor) return needs;
    for (const { repository, inside } of this.repositoryLayers(id, descriptor)) needs.set(repository, [...(needs.get(repository) ?? []), inside]);
    return needs;
  }

  /** Whether thin layers may read from `repository`. */
  allows(repository: string): boolean {
    return this.allowed?.has(repository) ?? true;
  }

  /** The descriptor's layers, base first, as repository and path inside it; refuses repositories not allowed. */
  private repositoryLayers(id: string, descriptor: ThinDescriptor): Array<{ repository: string; inside: string }> {
    return descriptor.layers.map((layer) => {
      const { repository, path: inside } = parseCvmfsUrl(layer.url);
      if (!this.allows(repository)) {
        throw new Error(`thin layer ${id} reads from repository ${repository}, which this driver is not configured for; configure it (--repository ${repository}=<server URL> or /etc/cvmfs/config.d/${repository}.conf)`);
      }
      return { repository, inside };
    });
  }
}
