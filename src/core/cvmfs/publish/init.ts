// `repo init`: a publisher directory for a new, empty repository (revision 0: keys, whitelist,
// an empty root catalog, reflog, signed manifest), or for an existing repository whose keys
// are imported (adopted: later publishes continue its revisions, e.g. one made by cvmfs_server).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmfsError } from '../errors.ts';
import { hashBytes, type HashAlgorithm } from '../hash.ts';
import { parsePublicKeys, verifyWhitelistSignature } from '../signature.ts';
import { checkWhitelist, parseWhitelist } from '../whitelist.ts';
import { log } from '../../log.ts';
import { replaceFile } from './atomic-file.ts';
import { DEFAULT_CHUNK_SIZES, type ChunkSizes } from './chunker.ts';
import { zeroCounts } from './counters.ts';
import { generateKeys, importKeys, keyFiles } from './keys.ts';
import { CONFIG_FILE, publisherPaths, type PublisherConfig } from './layout.ts';
import { ObjectStore } from './object-store.ts';
import { checkOwnCertificate, exclusively, MANIFEST_FILE, readCurrentManifest, WHITELIST_FILE, type Publisher } from './publisher.ts';
import { addToReflog, REFLOG_FILE } from './reflog.ts';
import { directoryRow } from './rows.ts';
import { signManifest, signWhitelist } from './signing.ts';
import { WritableCatalog } from './writable-catalog.ts';

// What cvmfs_server mkfs uses: manifest TTL 240 s, whitelist 30 days.
const DEFAULT_TTL_SECONDS = 240;
const DEFAULT_WHITELIST_DAYS = 30;
const FQRN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface InitOptions {
  fqrn: string;
  hashAlgorithm?: HashAlgorithm;
  whitelistDays?: number;
  /** Storage directory (default `<dir>/storage`); with `importKeysFrom` it may hold the repository already. */
  storage?: string;
  /** Directory with <fqrn>.masterkey, .pub, .key, .crt to use instead of new keys. */
  importKeysFrom?: string;
  /** Chunk sizes for large files; null stores files whole (default: cvmfs_server's chunking defaults). */
  chunking?: ChunkSizes | null;
  /** zlib level of new objects (default 6, as cvmfs); see ObjectStore. */
  compressionLevel?: number;
  now?: Date;
}

export interface InitResult {
  publisher: Publisher;
  /** The public master key clients must be given. */
  publicKeyFile: string;
  /** True when the storage held a repository already and was adopted. */
  adopted: boolean;
}

export async function initRepository(directory: string, options: InitOptions): Promise<InitResult> {
  if (!FQRN.test(options.fqrn)) throw new CvmfsError('invalid-argument', `"${options.fqrn}" is not a repository name (like example.cern.ch)`);
  const paths = publisherPaths(directory, options.storage ?? 'storage');
  if (existsSync(paths.config)) throw new CvmfsError('config', `${paths.root} is a publisher directory already (${CONFIG_FILE} exists)`);
  const now = options.now ?? new Date();
  const existing = existsSync(join(paths.storage, MANIFEST_FILE));
  if (existing && options.importKeysFrom === undefined) {
    throw new CvmfsError('config', `${paths.storage} holds a repository already; pass the directory with its keys (--import-keys) to publish on top of it`);
  }
  await mkdir(paths.root, { recursive: true });
  const keys = options.importKeysFrom === undefined ? await generateKeys(paths.keys, options.fqrn, now) : await importKeys(options.importKeysFrom, paths.keys, options.fqrn);
  const config: PublisherConfig = {
    fqrn: options.fqrn,
    storage: options.storage ?? 'storage',
    hashAlgorithm: options.hashAlgorithm ?? 'sha1',
    whitelistDays: options.whitelistDays ?? DEFAULT_WHITELIST_DAYS,
    chunking: options.chunking === undefined ? DEFAULT_CHUNK_SIZES : options.chunking,
    ...(options.compressionLevel !== undefined && { compressionLevel: options.compressionLevel }),
  };
  const publisher: Publisher = { config, paths, keys };
  if (existing) {
    config.hashAlgorithm = await adopt(publisher, now);
  } else {
    await mkdir(paths.storage, { recursive: true });
    await exclusively(publisher, 'repo init', () => createRevisionZero(publisher, now));
  }
  // Written last: a directory without it was never a finished publisher and can be set up again.
  await writeFile(paths.config, `${JSON.stringify(config, null, 2)}\n`);
  log.debug(`${options.fqrn}: ${existing ? 'adopted' : 'created'} in ${paths.storage}; give clients the public key ${keyFiles(paths.keys, options.fqrn).publicKey}`);
  return { publisher, publicKeyFile: keyFiles(paths.keys, options.fqrn).publicKey, adopted: existing };
}

async function createRevisionZero(publisher: Publisher, now: Date): Promise<void> {
  const { config, paths, keys } = publisher;
  // The object store's directories, as cvmfs' local backend makes them (its tools need them to publish here).
  await Promise.all(Array.from({ length: 256 }, (_, index) => mkdir(join(paths.storage, 'data', index.toString(16).padStart(2, '0')), { recursive: true })));
  const store = new ObjectStore(paths.storage, paths.txn, config.hashAlgorithm, config.compressionLevel);
  const seconds = Math.floor(now.getTime() / 1000);
  const rootFile = join(paths.txn, 'root.db');
  const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const root = WritableCatalog.create(rootFile, '', directoryRow('', { permissions: 0o755, ...owner, mtime: seconds, xattr: null }));
  const sealed = root.seal({ revision: 0, previousRevision: null, lastModified: seconds, counters: { self: root.selfCounters(), subtree: zeroCounts() } });
  const rootCatalog = await store.put(await readFile(sealed.file), 'C');
  await rm(rootFile);
  const certificate = await store.put(Buffer.from(keys.certificatePem), 'X');
  const whitelist = signWhitelist({ fqrn: config.fqrn, certificate: keys.certificate, masterKey: keys.masterKey, algorithm: config.hashAlgorithm, now, days: config.whitelistDays });
  const reflog = await addToReflog(null, join(paths.txn, 'reflog.db'), config.fqrn, [{ hash: rootCatalog, type: 'catalog' }, { hash: certificate, type: 'certificate' }], seconds);
  const manifest = signManifest(
    {
      rootCatalog,
      rootCatalogSize: sealed.size,
      ttlSeconds: DEFAULT_TTL_SECONDS,
      revision: 0,
      garbageCollectable: false,
      fqrn: config.fqrn,
      certificate,
      history: null,
      publishedAt: seconds,
      metaInfo: null,
      reflog: hashBytes(config.hashAlgorithm, reflog),
    },
    keys.releaseKey,
  );
  await replaceFile(join(paths.storage, WHITELIST_FILE), whitelist.data, paths.txn);
  await replaceFile(join(paths.storage, REFLOG_FILE), reflog, paths.txn);
  await replaceFile(join(paths.storage, MANIFEST_FILE), manifest, paths.txn);
}

/** Checks that the imported keys are the ones this repository is signed with; returns its hash algorithm. */
async function adopt(publisher: Publisher, now: Date): Promise<HashAlgorithm> {
  const { paths, keys, config } = publisher;
  const manifest = await readCurrentManifest(publisher);
  await checkOwnCertificate(publisher, manifest, new ObjectStore(paths.storage, paths.txn, manifest.rootCatalog.algorithm));
  const whitelistFile = join(paths.storage, WHITELIST_FILE);
  const whitelist = parseWhitelist(await readFile(whitelistFile), whitelistFile);
  verifyWhitelistSignature(whitelist.letter, parsePublicKeys(keys.publicKeyPem, keyFiles(paths.keys, config.fqrn).publicKey), whitelistFile);
  try {
    checkWhitelist(whitelist, { fqrn: config.fqrn, now, certificate: keys.certificate, blacklist: [] }, whitelistFile);
  } catch (error) {
    log.warn(`${(error as Error).message}; run "repo resign" before publishing`);
  }
  return manifest.rootCatalog.algorithm;
}

