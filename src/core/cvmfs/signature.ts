// The two RSA checks of a repository (doc §1.5, §1.6):
// - the manifest is signed (PKCS#1 v1.5 with a SHA-1 DigestInfo) over its ASCII hash line by the
//   key of the certificate object X;
// - the whitelist's hash line is "private-encrypted" (PKCS#1 type 1, no DigestInfo) with the
//   master key, whose public half is what clients are configured with.
import { constants, createPublicKey, privateEncrypt, publicDecrypt, sign, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CvmfsError, describeError } from './errors.ts';
import type { SignedLetter } from './signed-letter.ts';

export interface PublicKey {
  key: KeyObject;
  /** Where it came from (file and position), for error messages. */
  origin: string;
}

const PEM_PUBLIC_KEY = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g;

/** Reads public master keys; `files` may be a ":"-separated list (CVMFS_PUBLIC_KEY). */
export async function loadPublicKeys(files: string | readonly string[]): Promise<PublicKey[]> {
  const paths = (typeof files === 'string' ? files.split(':') : files).filter((path) => path !== '');
  const keys: PublicKey[] = [];
  for (const path of paths) {
    let text;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new CvmfsError('config', `cannot read public key file ${path}: ${describeError(error)}`, { cause: error });
    }
    keys.push(...parsePublicKeys(text, path));
  }
  if (keys.length === 0) {
    throw new CvmfsError('config', 'no public master key configured (CVMFS_PUBLIC_KEY / CVMFS_KEYS_DIR); a repository cannot be verified without one');
  }
  return keys;
}

/** A key file may hold several PEM keys one after another. */
export function parsePublicKeys(pem: string, origin: string): PublicKey[] {
  const blocks = pem.match(PEM_PUBLIC_KEY) ?? [];
  if (blocks.length === 0) throw new CvmfsError('config', `${origin} holds no "BEGIN PUBLIC KEY" block`);
  return blocks.map((block, index) => {
    try {
      return { key: createPublicKey(block), origin: blocks.length === 1 ? origin : `${origin} (key ${index + 1})` };
    } catch (error) {
      throw new CvmfsError('config', `${origin}: public key ${index + 1} is not a valid key: ${describeError(error)}`, { cause: error });
    }
  });
}

export function verifyManifestSignature(letter: SignedLetter, certificate: X509Certificate, source: string): void {
  const ok = verify('sha1', Buffer.from(letter.hashLine, 'latin1'), certificate.publicKey, letter.signature);
  if (!ok) {
    throw new CvmfsError(
      'bad-signature',
      `manifest ${source} is not signed by the key of its certificate (subject ${certificate.subject.replaceAll('\n', ', ')})`,
    );
  }
}

export function verifyWhitelistSignature(letter: SignedLetter, keys: readonly PublicKey[], source: string): void {
  const expected = Buffer.from(letter.hashLine, 'latin1');
  for (const { key } of keys) {
    let recovered;
    try {
      recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, letter.signature);
    } catch {
      continue; // Not this key: the padding does not check out.
    }
    if (recovered.equals(expected)) return;
  }
  const tried = keys.map((key) => key.origin).join(', ');
  throw new CvmfsError(
    'bad-whitelist',
    `whitelist ${source} is not signed by any configured public master key (tried ${tried}); check CVMFS_PUBLIC_KEY / CVMFS_KEYS_DIR for this repository`,
  );
}

/** The manifest signature: PKCS#1 v1.5 with a SHA-1 DigestInfo over the ASCII hash line, by the certificate's key. */
export function signManifestHashLine(hashLine: Buffer, releaseKey: KeyObject): Buffer {
  return sign('sha1', hashLine, releaseKey);
}

/** The whitelist signature: the hash line "private-encrypted" (PKCS#1 type 1, no DigestInfo) with the master key. */
export function signWhitelistHashLine(hashLine: Buffer, masterKey: KeyObject): Buffer {
  return privateEncrypt({ key: masterKey, padding: constants.RSA_PKCS1_PADDING }, hashLine);
}
