// `.cvmfswhitelist`: the master key vouches, until an expiry date, for the certificates allowed
// to sign this repository's manifests (doc §1.6). Its signature is checked in signature.ts.
import type { X509Certificate } from 'node:crypto';
import { CvmfsError } from './errors.ts';
import { formatContentHash, hashBytes, parseContentHash, type ContentHash } from './hash.ts';
import { letterLines, openSignedLetter, type SignedLetter } from './signed-letter.ts';

export interface Whitelist {
  /** Expiry as written (YYYYMMDDhhmmss, UTC). */
  expires: string;
  fqrn: string;
  /** Certificate fingerprints (hash of the DER certificate) allowed to sign manifests. */
  fingerprints: ContentHash[];
  letter: SignedLetter;
}

const TIMESTAMP = /^\d{14}$/;

export function parseWhitelist(data: Buffer, source: string): Whitelist {
  const what = `whitelist ${source}`;
  const letter = openSignedLetter(data, what, 'bad-whitelist');
  const [created, expiry, name, ...rest] = letterLines(letter.text);
  if (created === undefined || !TIMESTAMP.test(created)) {
    throw new CvmfsError('bad-whitelist', `${what} does not start with a YYYYMMDDhhmmss creation time`);
  }
  if (expiry === undefined || expiry[0] !== 'E' || !TIMESTAMP.test(expiry.slice(1))) {
    throw new CvmfsError('bad-whitelist', `${what} lacks its "EYYYYMMDDhhmmss" expiry line`);
  }
  if (name === undefined || name[0] !== 'N') {
    throw new CvmfsError('bad-whitelist', `${what} lacks its "N<repository name>" line`);
  }
  const fingerprints: ContentHash[] = [];
  for (const line of rest) {
    // PKCS#7-signed and CA-chained whitelists (Vpkcs7, Wcachain) need a CA store we do not have.
    if (line === 'Vpkcs7' || line === 'Wcachain') {
      throw new CvmfsError('unsupported', `${what} requires ${line === 'Vpkcs7' ? 'PKCS#7' : 'CA chain'} verification, which this client does not implement`);
    }
    const fingerprint = parseFingerprint(line);
    if (fingerprint !== null) fingerprints.push(fingerprint);
  }
  return { expires: expiry.slice(1), fqrn: name.slice(1), fingerprints, letter };
}

/**
 * "AB:CD:…:EF[-RMD160] # comment" → hash; null for lines that are no fingerprint (comments).
 * Same rule as the client: lowercase, drop ":", stop at the first space, tab or "#".
 */
export function parseFingerprint(line: string): ContentHash | null {
  const text = line.toLowerCase().split(/[ \t#]/, 1)[0]!.replaceAll(':', '');
  if (text === '') return null;
  try {
    return parseContentHash(text);
  } catch {
    return null;
  }
}

export function formatFingerprint(hash: ContentHash): string {
  const [hex, id = ''] = formatContentHash(hash).split('-');
  const pairs = hex!.toUpperCase().match(/../g)!.join(':');
  return id === '' ? pairs : `${pairs}-${id.toUpperCase()}`;
}

export interface WhitelistFields {
  created: Date;
  expires: Date;
  fqrn: string;
  fingerprints: readonly ContentHash[];
}

/** The signed text of a whitelist, as `cvmfs_server`'s create_whitelist writes it. */
export function formatWhitelistText(fields: WhitelistFields): Buffer {
  const lines = [whitelistTime(fields.created), `E${whitelistTime(fields.expires)}`, `N${fields.fqrn}`, ...fields.fingerprints.map(formatFingerprint)];
  return Buffer.from(lines.map((line) => `${line}\n`).join(''), 'utf8');
}

/** YYYYMMDDhhmmss in UTC. */
export function whitelistTime(date: Date): string {
  return date.toISOString().replace(/\D/g, '').slice(0, 14);
}

export interface WhitelistCheck {
  fqrn: string;
  now: Date;
  certificate: X509Certificate;
  /** Fingerprints that must be refused even when whitelisted (/etc/cvmfs/blacklist). */
  blacklist: readonly ContentHash[];
}

/** Everything but the signature: name, expiry, and that the signing certificate is listed. */
export function checkWhitelist(whitelist: Whitelist, check: WhitelistCheck, source: string): void {
  const what = `whitelist ${source}`;
  if (whitelist.fqrn !== check.fqrn) {
    throw new CvmfsError('bad-whitelist', `${what} is for repository "${whitelist.fqrn}", not "${check.fqrn}"`);
  }
  // The client compares year, month, day and hour only: valid while now's hour is before the expiry's.
  const nowHour = whitelistTime(check.now).slice(0, 10);
  if (nowHour >= whitelist.expires.slice(0, 10)) {
    throw new CvmfsError(
      'bad-whitelist',
      `${what} expired at ${formatWhitelistTime(whitelist.expires)} UTC; the repository owner must re-sign it (cvmfs_server resign)`,
    );
  }
  const certificateDer = check.certificate.raw;
  const listed = (hash: ContentHash) => hashBytes(hash.algorithm, certificateDer).hex === hash.hex;
  const blocked = check.blacklist.find(listed);
  if (blocked !== undefined) {
    throw new CvmfsError('bad-whitelist', `the certificate ${formatFingerprint(blocked)} that signed the manifest is blacklisted`);
  }
  if (!whitelist.fingerprints.some(listed)) {
    const own = formatFingerprint(hashBytes('sha1', certificateDer));
    throw new CvmfsError('bad-whitelist', `${what} does not list the certificate ${own} that signed the manifest`);
  }
}

function formatWhitelistTime(stamp: string): string {
  return `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)} ${stamp.slice(8, 10)}:${stamp.slice(10, 12)}:${stamp.slice(12, 14)}`;
}
