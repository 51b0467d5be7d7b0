// `.cvmfspublished`: the signed entry point of a repository revision (doc §1.4).
import { CvmfsError } from './errors.ts';
import { formatContentHash, parseContentHash, type ContentHash } from './hash.ts';
import { letterLines, openSignedLetter, type SignedLetter } from './signed-letter.ts';

export interface Manifest {
  /** C: hash of the root catalog object (stored with suffix C). */
  rootCatalog: ContentHash;
  /** B: size of the uncompressed root catalog; a hint only. */
  rootCatalogSize: number | null;
  /** D: seconds a client may use this revision before looking for a newer one. */
  ttlSeconds: number;
  /** S: revision number; strictly increases with every publish. */
  revision: number;
  /** N: the repository name this manifest was signed for. */
  fqrn: string | null;
  /** X: hash of the certificate object (suffix X) whose key signed this manifest. */
  certificate: ContentHash | null;
  /** T: publish time, unix seconds; never decreases. */
  publishedAt: number;
  /** H: hash of the tag database (suffix H). */
  history: ContentHash | null;
  /** M: hash of the meta-info JSON (suffix M). */
  metaInfo: ContentHash | null;
  /** Y: hash of the uncompressed `.cvmfsreflog` file. */
  reflog: ContentHash | null;
  /** Every field as written, keyed by its letter. */
  fields: Readonly<Record<string, string>>;
  letter: SignedLetter;
}

// MD5 of the empty root path; the client rejects manifests whose R differs.
const ROOT_PATH_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';

/** Parses and hash-checks the envelope; trust (signature, whitelist) is checked elsewhere. */
export function parseManifest(data: Buffer, source: string): Manifest {
  const what = `manifest ${source}`;
  const letter = openSignedLetter(data, what, 'bad-manifest');
  const fields: Record<string, string> = {};
  for (const line of letterLines(letter.text)) {
    const key = line[0]!;
    // Z may repeat; the client joins its values with "|". Other keys: the last one wins.
    fields[key] = key === 'Z' && fields.Z !== undefined ? `${fields.Z}|${line.slice(1)}` : line.slice(1);
  }
  for (const key of ['C', 'R', 'D', 'S']) {
    if (fields[key] === undefined) throw new CvmfsError('bad-manifest', `${what} lacks the required field ${key}`);
  }
  if (fields.R !== ROOT_PATH_MD5) {
    throw new CvmfsError('bad-manifest', `${what} has root path hash R${fields.R}, expected R${ROOT_PATH_MD5}`);
  }
  const hashField = (key: string): ContentHash | null => {
    const value = fields[key];
    if (value === undefined) return null;
    try {
      return parseContentHash(value);
    } catch (error) {
      throw new CvmfsError('bad-manifest', `${what} has a malformed ${key} field "${value}"`, { cause: error });
    }
  };
  const numberField = (key: string): number | null => {
    const value = fields[key];
    if (value === undefined) return null;
    if (!/^\d+$/.test(value)) throw new CvmfsError('bad-manifest', `${what} has a non-numeric ${key} field "${value}"`);
    return Number(value);
  };
  return {
    rootCatalog: hashField('C')!,
    rootCatalogSize: numberField('B'),
    ttlSeconds: numberField('D')!,
    revision: numberField('S')!,
    fqrn: fields.N ?? null,
    certificate: hashField('X'),
    publishedAt: numberField('T') ?? 0,
    history: hashField('H'),
    metaInfo: hashField('M'),
    reflog: hashField('Y'),
    fields,
    letter,
  };
}

/** What a publisher puts into a manifest; the optional hashes are left out when null. */
export interface ManifestFields {
  rootCatalog: ContentHash;
  rootCatalogSize: number;
  ttlSeconds: number;
  revision: number;
  garbageCollectable: boolean;
  fqrn: string;
  certificate: ContentHash;
  history: ContentHash | null;
  publishedAt: number;
  metaInfo: ContentHash | null;
  reflog: ContentHash | null;
}

/**
 * The signed text of a manifest, in the writer's field order (Manifest::ExportString):
 * C B R D S G A [N] [X] [H] [T] [M] [Y]. A (alternative .cvmfsalt- paths) is always "no".
 */
export function formatManifestText(fields: ManifestFields): Buffer {
  const lines = [
    `C${formatContentHash(fields.rootCatalog)}`,
    `B${fields.rootCatalogSize}`,
    `R${ROOT_PATH_MD5}`,
    `D${fields.ttlSeconds}`,
    `S${fields.revision}`,
    `G${fields.garbageCollectable ? 'yes' : 'no'}`,
    'Ano',
    `N${fields.fqrn}`,
    `X${formatContentHash(fields.certificate)}`,
  ];
  if (fields.history !== null) lines.push(`H${formatContentHash(fields.history)}`);
  if (fields.publishedAt > 0) lines.push(`T${fields.publishedAt}`);
  if (fields.metaInfo !== null) lines.push(`M${formatContentHash(fields.metaInfo)}`);
  if (fields.reflog !== null) lines.push(`Y${formatContentHash(fields.reflog)}`);
  return Buffer.from(lines.map((line) => `${line}\n`).join(''), 'utf8');
}

/** The client's acceptance checks that need no keys: the manifest must name this repository. */
export function checkManifestIdentity(manifest: Manifest, fqrn: string, source: string): void {
  if (manifest.fqrn !== fqrn) {
    const found = manifest.fqrn === null ? 'no repository name (N field)' : `repository name "${manifest.fqrn}"`;
    throw new CvmfsError(
      'bad-manifest',
      `manifest ${source} carries ${found}, but repository "${fqrn}" was requested; check the server URL points at the right repository`,
    );
  }
  if (manifest.certificate === null) {
    throw new CvmfsError('bad-manifest', `manifest ${source} names no certificate (X field), so its signature cannot be checked`);
  }
}
