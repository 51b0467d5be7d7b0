// `repo resign`: a new whitelist (the old one expires, by default after 30 days, and then every
// client refuses the repository) and a fresh signature on the current manifest.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../../log.ts';
import { replaceFile } from './atomic-file.ts';
import { ObjectStore } from './object-store.ts';
import { checkOwnCertificate, exclusively, MANIFEST_FILE, readCurrentManifest, WHITELIST_FILE, type Publisher } from './publisher.ts';
import { resignManifest, signWhitelist } from './signing.ts';

export interface ResignOptions {
  days?: number;
  now?: Date;
}

export async function resignRepository(publisher: Publisher, options: ResignOptions = {}): Promise<{ expires: Date }> {
  return exclusively(publisher, 'repo resign', async () => {
    const { config, paths, keys } = publisher;
    const now = options.now ?? new Date();
    const manifest = await readCurrentManifest(publisher);
    await checkOwnCertificate(publisher, manifest, new ObjectStore(paths.storage, paths.txn, config.hashAlgorithm));
    const whitelist = signWhitelist({
      fqrn: config.fqrn,
      certificate: keys.certificate,
      masterKey: keys.masterKey,
      algorithm: config.hashAlgorithm,
      now,
      days: options.days ?? config.whitelistDays,
    });
    const manifestFile = join(paths.storage, MANIFEST_FILE);
    const resigned = resignManifest(manifest.letter.text, manifest.rootCatalog.algorithm, keys.releaseKey);
    await replaceFile(join(paths.storage, WHITELIST_FILE), whitelist.data, paths.txn);
    // Only the signature can differ; the text, and with it the revision, stay as they were.
    if (!resigned.equals(await readFile(manifestFile))) await replaceFile(manifestFile, resigned, paths.txn);
    log.debug(`${config.fqrn}: whitelist renewed until ${whitelist.expires.toISOString()}`);
    return { expires: whitelist.expires };
  });
}
