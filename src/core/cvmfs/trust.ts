// Accepting a revision, in the client's order (doc §1.4 "Client acceptance checks"): manifest
// parses and names this repository, is not older than what the cache has seen, is signed by
// its certificate; the whitelist is signed by a configured master key, names this repository,
// has not expired and lists that certificate.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { checkNotOlder, type Breadcrumb } from './breadcrumb.ts';
import { CvmfsError, describeError } from './errors.ts';
import type { ContentHash } from './hash.ts';
import { checkManifestIdentity, parseManifest, type Manifest } from './manifest.ts';
import type { ObjectFetcher } from './object-fetcher.ts';
import { verifyManifestSignature, verifyWhitelistSignature, type PublicKey } from './signature.ts';
import { checkWhitelist, parseWhitelist, type Whitelist } from './whitelist.ts';

export interface TrustSettings {
  fqrn: string;
  publicKeys: readonly PublicKey[];
  blacklist: readonly ContentHash[];
  now: Date;
  /** The newest revision accepted before, or null on a fresh cache. */
  breadcrumb: Breadcrumb | null;
}

export interface TrustedRevision {
  manifest: Manifest;
  certificate: X509Certificate;
  whitelist: Whitelist;
}

export async function fetchTrustedRevision(fetcher: ObjectFetcher, settings: TrustSettings): Promise<TrustedRevision> {
  const published = await fetcher.fetchMetadata('.cvmfspublished');
  const manifest = parseManifest(published.data, published.location);
  checkManifestIdentity(manifest, settings.fqrn, published.location);
  checkNotOlder(
    settings.breadcrumb,
    { rootCatalog: manifest.rootCatalog, revision: manifest.revision, publishedAt: manifest.publishedAt },
    settings.fqrn,
    published.location,
  );

  // The certificate object is always zlib-compressed, whatever the repository's compression.
  const certificatePem = await fetcher.withObject(manifest.certificate!, 'X', 'zlib', (path) => readFile(path));
  let certificate;
  try {
    certificate = new X509Certificate(certificatePem);
  } catch (error) {
    throw new CvmfsError('bad-signature', `the certificate object named by manifest ${published.location} is not an X.509 certificate: ${describeError(error)}`, {
      cause: error,
    });
  }
  verifyManifestSignature(manifest.letter, certificate, published.location);

  const listed = await fetcher.fetchMetadata('.cvmfswhitelist');
  const whitelist = parseWhitelist(listed.data, listed.location);
  verifyWhitelistSignature(whitelist.letter, settings.publicKeys, listed.location);
  checkWhitelist(whitelist, { fqrn: settings.fqrn, now: settings.now, certificate, blacklist: settings.blacklist }, listed.location);
  return { manifest, certificate, whitelist };
}
