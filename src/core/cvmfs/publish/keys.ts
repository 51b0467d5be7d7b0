// The four key files of a repository, named as cvmfs_server names them in /etc/cvmfs/keys:
//   <fqrn>.masterkey  RSA private key that signs the whitelist (keep it offline in real life)
//   <fqrn>.pub        its public half: what clients are configured with (CVMFS_PUBLIC_KEY)
//   <fqrn>.key        RSA private key that signs every manifest
//   <fqrn>.crt        self-signed certificate of that key; its fingerprint is on the whitelist
// The directory is created 0700 and the private keys 0600: nothing here may be served.
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmfsError, describeError } from '../errors.ts';
import { createSelfSignedCertificate, releaseManagerName } from './certificate.ts';

// cvmfs_server makes release certificates valid for a year; clients never check the dates.
const CERTIFICATE_DAYS = 365;
const RSA_BITS = 2048;

export interface RepositoryKeys {
  masterKey: KeyObject;
  /** PEM of the public master key, as clients are given it. */
  publicKeyPem: string;
  releaseKey: KeyObject;
  certificatePem: string;
  certificate: X509Certificate;
}

export function keyFiles(directory: string, fqrn: string): Record<'masterKey' | 'publicKey' | 'releaseKey' | 'certificate', string> {
  return {
    masterKey: join(directory, `${fqrn}.masterkey`),
    publicKey: join(directory, `${fqrn}.pub`),
    releaseKey: join(directory, `${fqrn}.key`),
    certificate: join(directory, `${fqrn}.crt`),
  };
}

export async function generateKeys(directory: string, fqrn: string, now: Date): Promise<RepositoryKeys> {
  const master = generateKeyPairSync('rsa', { modulusLength: RSA_BITS });
  const release = generateKeyPairSync('rsa', { modulusLength: RSA_BITS });
  const certificatePem = createSelfSignedCertificate({
    commonName: releaseManagerName(fqrn),
    privateKey: release.privateKey,
    publicKey: release.publicKey,
    notBefore: now,
    validDays: CERTIFICATE_DAYS,
  });
  const files = keyFiles(directory, fqrn);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  await chmod(directory, 0o700);
  await writeFile(files.masterKey, master.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(files.releaseKey, release.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(files.publicKey, master.publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  await writeFile(files.certificate, certificatePem, { mode: 0o644 });
  return loadKeys(directory, fqrn);
}

/** Copies another repository's key files (e.g. from /etc/cvmfs/keys) into `directory`. */
export async function importKeys(from: string, directory: string, fqrn: string): Promise<RepositoryKeys> {
  const source = keyFiles(from, fqrn);
  const target = keyFiles(directory, fqrn);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  await chmod(directory, 0o700);
  for (const [role, path] of Object.entries(source) as [keyof typeof source, string][]) {
    try {
      await copyFile(path, target[role]);
    } catch (error) {
      throw new CvmfsError('config', `cannot import ${path}: ${describeError(error)}; ${from} must hold ${fqrn}.masterkey, .pub, .key and .crt`, { cause: error });
    }
    await chmod(target[role], role === 'masterKey' || role === 'releaseKey' ? 0o600 : 0o644);
  }
  return loadKeys(directory, fqrn);
}

/** Reads and cross-checks the key files: each private key must belong to its public half. */
export async function loadKeys(directory: string, fqrn: string): Promise<RepositoryKeys> {
  const files = keyFiles(directory, fqrn);
  const read = async (path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      throw new CvmfsError('config', `cannot read key file ${path}: ${describeError(error)}`, { cause: error });
    }
  };
  const parse = <T>(path: string, make: () => T): T => {
    try {
      return make();
    } catch (error) {
      throw new CvmfsError('config', `${path} is not a valid key or certificate: ${describeError(error)}`, { cause: error });
    }
  };
  const [masterPem, publicKeyPem, releasePem, certificatePem] = await Promise.all(
    [files.masterKey, files.publicKey, files.releaseKey, files.certificate].map(read),
  );
  const masterKey = parse(files.masterKey, () => createPrivateKey(masterPem!));
  const publicKey = parse(files.publicKey, () => createPublicKey(publicKeyPem!));
  const releaseKey = parse(files.releaseKey, () => createPrivateKey(releasePem!));
  const certificate = parse(files.certificate, () => new X509Certificate(certificatePem!));
  if (!certificate.checkPrivateKey(releaseKey)) {
    throw new CvmfsError('config', `${files.certificate} is not the certificate of ${files.releaseKey}; the two must be made together`);
  }
  const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(masterKey)).equals(spki(publicKey))) {
    throw new CvmfsError('config', `${files.publicKey} is not the public half of ${files.masterKey}`);
  }
  return { masterKey, publicKeyPem: publicKeyPem!, releaseKey, certificatePem: certificatePem!, certificate };
}
