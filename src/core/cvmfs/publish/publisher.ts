// An opened publisher directory: its settings, paths and keys, and the current revision as it
// is in storage. Anything that changes the repository goes through `exclusively`, which holds
// the lock and a fresh transaction directory for the duration.
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmfsError, describeError } from '../errors.ts';
import { formatContentHash } from '../hash.ts';
import { checkManifestIdentity, parseManifest, type Manifest } from '../manifest.ts';
import { verifyManifestSignature } from '../signature.ts';
import { loadKeys, type RepositoryKeys } from './keys.ts';
import { readPublisherConfig, type PublisherConfig, type PublisherPaths } from './layout.ts';
import { acquireLock } from './lock.ts';
import type { ObjectStore } from './object-store.ts';

export const MANIFEST_FILE = '.cvmfspublished';
export const WHITELIST_FILE = '.cvmfswhitelist';

export interface Publisher {
  config: PublisherConfig;
  paths: PublisherPaths;
  keys: RepositoryKeys;
}

export async function openPublisher(root: string): Promise<Publisher> {
  const { config, paths } = await readPublisherConfig(root);
  return { config, paths, keys: await loadKeys(paths.keys, config.fqrn) };
}

/** Runs `task` holding the publisher's lock, with an empty transaction directory it may fill. */
export async function exclusively<T>(publisher: Publisher, purpose: string, task: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(publisher.paths.lock, purpose);
  try {
    // Leftovers of a publish that was killed: nothing references them.
    await rm(publisher.paths.txn, { recursive: true, force: true });
    await mkdir(publisher.paths.txn, { recursive: true });
    try {
      return await task();
    } finally {
      await rm(publisher.paths.txn, { recursive: true, force: true });
    }
  } finally {
    await lock.release();
  }
}

/** The manifest in storage, checked to be this repository's and signed by this publisher's key. */
export async function readCurrentManifest(publisher: Publisher): Promise<Manifest> {
  const file = join(publisher.paths.storage, MANIFEST_FILE);
  let data;
  try {
    data = await readFile(file);
  } catch (error) {
    throw new CvmfsError('config', `cannot read the current manifest ${file}: ${describeError(error)}`, { cause: error });
  }
  const manifest = parseManifest(data, file);
  checkManifestIdentity(manifest, publisher.config.fqrn, file);
  verifyManifestSignature(manifest.letter, publisher.keys.certificate, file);
  return manifest;
}

/** Fails unless the certificate object the manifest names is this publisher's certificate. */
export async function checkOwnCertificate(publisher: Publisher, manifest: Manifest, store: ObjectStore): Promise<void> {
  const stored = new X509Certificate(await store.get(manifest.certificate!, 'X'));
  if (!stored.raw.equals(publisher.keys.certificate.raw)) {
    throw new CvmfsError(
      'config',
      `the repository's certificate ${formatContentHash(manifest.certificate!)} is not ${publisher.paths.keys}/${publisher.config.fqrn}.crt; these keys do not belong to this repository`,
    );
  }
}
