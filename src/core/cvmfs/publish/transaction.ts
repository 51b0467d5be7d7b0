// One publish (doc §4.2, §7.2): the caller edits the catalog tree; then, in this order, the new
// objects (written while editing), the changed catalogs bottom-up, the tag database, the
// certificate, the reflog and, last, the signed manifest, renamed over the old one. Until that
// rename nothing a client reads has changed; a failure or a kill before it leaves the previous
// revision as it was, plus unreferenced objects.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmfsError, describeError } from '../errors.ts';
import { formatContentHash, hashBytes, type ContentHash } from '../hash.ts';
import type { Manifest } from '../manifest.ts';
import { log } from '../../log.ts';
import { replaceFile } from './atomic-file.ts';
import { CatalogTree } from './catalog-tree.ts';
import { recordRevision } from './history.ts';
import { ObjectStore } from './object-store.ts';
import { checkOwnCertificate, exclusively, MANIFEST_FILE, readCurrentManifest, type Publisher } from './publisher.ts';
import { addToReflog, REFLOG_FILE, type Reference } from './reflog.ts';
import { signManifest } from './signing.ts';

export interface EditContext {
  tree: CatalogTree;
  store: ObjectStore;
  /** Publish time, seconds: never before the previous revision's. */
  now: number;
}

export interface PublishResult {
  revision: number;
  rootCatalog: ContentHash;
  catalogsWritten: number;
  objectsWritten: number;
  bytesWritten: number;
}

export interface PublishOptions {
  /** What the lock file says this publisher is doing. */
  purpose: string;
  now?: Date;
}

export async function publish(publisher: Publisher, edit: (context: EditContext) => Promise<void>, options: PublishOptions): Promise<PublishResult> {
  return exclusively(publisher, options.purpose, async () => {
    const { paths, config, keys } = publisher;
    const manifest = await readCurrentManifest(publisher);
    const store = new ObjectStore(paths.storage, paths.txn, config.hashAlgorithm, config.compressionLevel);
    // T never goes backwards, or clients that saw the previous revision refuse this one.
    const now = Math.max(Math.floor((options.now ?? new Date()).getTime() / 1000), manifest.publishedAt);
    const tree = await CatalogTree.open(store, paths.txn, manifest.rootCatalog);
    try {
      await edit({ tree, store, now });
      const rootRevision = Number((await tree.catalogFor('')).property('revision') ?? '0');
      const revision = Math.max(manifest.revision, rootRevision) + 1;
      const root = await tree.commit(revision, now);
      const history = await writeHistory(publisher, store, manifest, { rootCatalog: root.hash, rootCatalogSize: root.size, revision, timestamp: now });
      // The certificate object stays the one the repository has (its bytes may come from another zlib).
      await checkOwnCertificate(publisher, manifest, store);
      const certificate = manifest.certificate!;
      const references: Reference[] = [
        { hash: root.hash, type: 'catalog' },
        { hash: certificate, type: 'certificate' },
        { hash: history, type: 'history' },
      ];
      if (manifest.metaInfo !== null) references.push({ hash: manifest.metaInfo, type: 'metaInfo' });
      const reflog = await addToReflog(await readReflog(publisher, manifest), join(paths.txn, 'reflog.db'), config.fqrn, references, now);
      const signed = signManifest(
        {
          rootCatalog: root.hash,
          rootCatalogSize: root.size,
          ttlSeconds: manifest.ttlSeconds,
          revision,
          garbageCollectable: manifest.fields.G === 'yes',
          fqrn: config.fqrn,
          certificate,
          history,
          publishedAt: now,
          metaInfo: manifest.metaInfo,
          reflog: hashBytes(config.hashAlgorithm, reflog),
        },
        keys.releaseKey,
      );
      // The reflog is not read by clients; replacing it just before the manifest keeps the
      // window in which it runs ahead of the manifest down to one rename.
      await replaceFile(join(paths.storage, REFLOG_FILE), reflog, paths.txn);
      await replaceFile(join(paths.storage, MANIFEST_FILE), signed, paths.txn);
      log.debug(`${config.fqrn}: published revision ${revision} (root catalog ${formatContentHash(root.hash)}, ${store.objectsWritten} new objects)`);
      return { revision, rootCatalog: root.hash, catalogsWritten: root.catalogs, objectsWritten: store.objectsWritten, bytesWritten: store.bytesWritten };
    } finally {
      tree.discard();
    }
  });
}

async function writeHistory(publisher: Publisher, store: ObjectStore, manifest: Manifest, tagged: Parameters<typeof recordRevision>[3]): Promise<ContentHash> {
  const existing = manifest.history === null ? null : { data: await store.get(manifest.history, 'H'), hash: manifest.history };
  const data = await recordRevision(existing, join(publisher.paths.txn, 'history.db'), publisher.config.fqrn, tagged);
  return store.put(data, 'H');
}

/** The current reflog, checked against the manifest's Y; null when the repository has none yet. */
async function readReflog(publisher: Publisher, manifest: Manifest): Promise<Buffer | null> {
  const file = join(publisher.paths.storage, REFLOG_FILE);
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && manifest.reflog === null) return null;
    throw new CvmfsError('bad-data', `cannot read ${file}, which the manifest references: ${describeError(error)}`, { cause: error });
  }
  if (manifest.reflog === null) {
    throw new CvmfsError('bad-data', `${file} exists but the manifest names no reflog (Y); refusing to guess which revisions it describes (cvmfs_swissknife sign refuses too)`);
  }
  const actual = hashBytes(manifest.reflog.algorithm, data);
  if (actual.hex !== manifest.reflog.hex) {
    // A publish killed between its reflog and manifest renames leaves a newer reflog; it only lists more.
    log.warn(`${file} does not match the manifest's Y ${formatContentHash(manifest.reflog)} (a publish was interrupted); extending it anyway`);
  }
  return data;
}
