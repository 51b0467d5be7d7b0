// `repo ingest` as one publish: removals first (`--delete`), then the tar below its base
// directory. With a layer digest the base directory follows DUCC's layout,
// /.layers/<xx>/<hex>/layerfs, where `.layers`, `.layers/<xx>` and each layer are catalogs.
import { CvmfsError } from '../errors.ts';
import { normalizeRepositoryPath } from '../path-hash.ts';
import { log } from '../../log.ts';
import type { ChunkSizes } from './chunker.ts';
import type { Publisher } from './publisher.ts';
import { ingestTar, TreeEditor, type IngestSummary, type Owner } from './tar-ingest.ts';
import { publish, type PublishResult } from './transaction.ts';

export interface IngestRequest {
  /** The tar stream; absent for a pure removal. */
  tar?: AsyncIterable<Buffer>;
  /** Where to extract it (any spelling of a repository path; "/" = the root). */
  baseDir?: string;
  /** Instead of baseDir: a layer digest ("sha256:<hex>" or "<hex>") placed in DUCC's layout, as its own catalog. */
  layerDigest?: string;
  /** Make the base directory a nested catalog. */
  createCatalog?: boolean;
  /** Paths to remove, recursively, before extracting. */
  deletions?: readonly string[];
  /** Owner for every entry; default: keep the tar's uid/gid. */
  owner?: Owner | null;
  /** Overrides the publisher's chunking setting; null stores every file whole. */
  chunking?: ChunkSizes | null;
  now?: Date;
}

export interface IngestResult extends PublishResult {
  /** Null when no tar was given. */
  summary: IngestSummary | null;
  baseDir: string;
}

const LAYER_DIGEST = /^(?:sha256:)?([0-9a-f]{64})$/;

/** Where DUCC puts a layer's files: /.layers/<first two hex digits>/<hex>/layerfs. */
export function layerDirectory(digest: string): string {
  const match = LAYER_DIGEST.exec(digest);
  if (match === null) throw new CvmfsError('invalid-argument', `"${digest}" is not a layer digest (sha256:<64 lowercase hex digits>)`);
  return `/.layers/${match[1]!.slice(0, 2)}/${match[1]}/layerfs`;
}

export async function ingest(publisher: Publisher, request: IngestRequest): Promise<IngestResult> {
  if (request.tar === undefined && (request.deletions ?? []).length === 0) {
    throw new CvmfsError('invalid-argument', 'nothing to publish: give a tar to ingest or paths to delete');
  }
  if (request.layerDigest !== undefined && request.baseDir !== undefined) {
    throw new CvmfsError('invalid-argument', 'give either a base directory or a layer digest, not both');
  }
  if (request.tar !== undefined && request.layerDigest === undefined && request.baseDir === undefined) {
    throw new CvmfsError('invalid-argument', 'a tar needs a base directory (or a layer digest) to be extracted below');
  }
  const baseDir = request.layerDigest !== undefined ? layerDirectory(request.layerDigest) : normalizeRepositoryPath(request.baseDir ?? '/');
  let summary: IngestSummary | null = null;
  const result = await publish(
    publisher,
    async ({ tree, store, now }) => {
      const owner = request.owner ?? null;
      // The real tool gives the markers it adds the publisher's own uid/gid.
      const editor = new TreeEditor(tree, store, { owner, markerOwner: owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, now });
      for (const path of request.deletions ?? []) {
        if (!(await editor.remove(normalizeRepositoryPath(path)))) log.warn(`${path} does not exist in the repository; nothing to delete`);
      }
      if (request.tar === undefined) return;
      if (request.layerDigest !== undefined) {
        const shard = baseDir.split('/').slice(0, 3).join('/');
        await editor.makeNestedCatalog('/.layers');
        await editor.makeNestedCatalog(shard);
      }
      summary = await ingestTar(editor, store, request.tar, {
        baseDir,
        createCatalog: request.createCatalog === true || request.layerDigest !== undefined,
        owner,
        chunking: request.chunking === undefined ? publisher.config.chunking : request.chunking,
      });
    },
    { purpose: request.tar === undefined ? 'repo ingest --delete' : `repo ingest into ${baseDir || '/'}`, now: request.now },
  );
  return { ...result, summary, baseDir };
}
