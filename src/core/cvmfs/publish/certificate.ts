// The release manager certificate: self-signed X.509 over the manifest-signing key. The client
// only uses its public key and its fingerprint on the whitelist; it never checks its dates or
// chain. Shaped like what `cvmfs_server mkfs` makes with `openssl x509 -req -signkey`: version 1,
// SHA-256 signature, subject = issuer = "CN=<fqrn> CernVM-FS Release Managers".
import { randomBytes, sign, type KeyObject } from 'node:crypto';
import { bitString, nullValue, objectIdentifier, sequence, set, time, unsignedInteger, utf8String } from './der.ts';

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const COMMON_NAME = '2.5.4.3';
const DAY_MS = 24 * 60 * 60 * 1000;

/** cvmfs_server cuts long names to 30 characters, so the CN stays within X.509's 64-character bound. */
export function releaseManagerName(fqrn: string): string {
  const shown = fqrn.length > 30 ? `${fqrn.slice(0, 30)}[...]` : fqrn;
  return `${shown} CernVM-FS Release Managers`;
}

export interface CertificateRequest {
  commonName: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  notBefore: Date;
  validDays: number;
}

/** PEM text of a self-signed certificate for `publicKey`, signed with `privateKey`. */
export function createSelfSignedCertificate(request: CertificateRequest): string {
  const algorithm = sequence(objectIdentifier(SHA256_WITH_RSA), nullValue());
  const name = sequence(set(sequence(objectIdentifier(COMMON_NAME), utf8String(request.commonName))));
  const notAfter = new Date(request.notBefore.getTime() + request.validDays * DAY_MS);
  const toBeSigned = sequence(
    unsignedInteger(randomBytes(16)),
    algorithm,
    name,
    sequence(time(request.notBefore), time(notAfter)),
    name,
    request.publicKey.export({ type: 'spki', format: 'der' }),
  );
  const der = sequence(toBeSigned, algorithm, bitString(sign('sha256', toBeSigned, request.privateKey)));
  const lines = der.toString('base64').match(/.{1,64}/g)!;
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}
