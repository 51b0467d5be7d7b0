// The two signed letters a publisher writes (doc §1.5, §1.6): the manifest, signed by the
// release key, and the whitelist, signed by the master key and listing the release
// certificate's fingerprint until it expires.
import type { X509Certificate, KeyObject } from 'node:crypto';
import { hashBytes, type HashAlgorithm } from '../hash.ts';
import { formatManifestText, type ManifestFields } from '../manifest.ts';
import { signManifestHashLine, signWhitelistHashLine } from '../signature.ts';
import { sealSignedLetter } from '../signed-letter.ts';
import { formatWhitelistText } from '../whitelist.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** The manifest's hash line uses the algorithm of its root catalog hash. */
export function signManifest(fields: ManifestFields, releaseKey: KeyObject): Buffer {
  return resignManifest(formatManifestText(fields), fields.rootCatalog.algorithm, releaseKey);
}

/** A fresh signature for an existing manifest text. */
export function resignManifest(text: Buffer, algorithm: HashAlgorithm, releaseKey: KeyObject): Buffer {
  return sealSignedLetter(text, algorithm, (hashLine) => signManifestHashLine(hashLine, releaseKey));
}

export interface WhitelistRequest {
  fqrn: string;
  certificate: X509Certificate;
  masterKey: KeyObject;
  algorithm: HashAlgorithm;
  now: Date;
  days: number;
}

export function signWhitelist(request: WhitelistRequest): { data: Buffer; expires: Date } {
  const expires = new Date(request.now.getTime() + request.days * DAY_MS);
  const text = formatWhitelistText({
    created: request.now,
    expires,
    fqrn: request.fqrn,
    fingerprints: [hashBytes(request.algorithm, request.certificate.raw)],
  });
  return { data: sealSignedLetter(text, request.algorithm, (hashLine) => signWhitelistHashLine(hashLine, request.masterKey)), expires };
}
