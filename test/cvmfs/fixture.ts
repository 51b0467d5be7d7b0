// Test access to the shared fixture repository (made by the real cvmfs 2.12 tools) and to its
// TEST-ONLY keys, plus helpers to forge variants of it: re-signed manifests and whitelists.
import { constants, createHash, privateEncrypt, sign, type KeyObject } from 'node:crypto';
import { chmod, cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/cvmfs/', import.meta.url));
export const FQRN = 'fixture.cvmfs.test';
export const REPOSITORY_DIR = join(FIXTURES, FQRN);
export const PUBLIC_KEY = join(FIXTURES, `${FQRN}.pub`);
const KEYS = join(FIXTURES, 'keys');

export interface ExpectedEntry {
  type: string;
  mode: number;
  modeOctal: string;
  size: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNs: number | null;
  symlink: string | null;
  sha1: string | null;
  contentHash: string | null;
  objectPath: string | null;
  hardlinkGroup: number;
  linkcount: number;
  flags: number;
  catalog: string;
  nestedCatalogMountpoint: boolean;
  rdev: { major: number; minor: number } | null;
  xattrs: Record<string, string> | null;
  chunks: unknown[] | null;
  stat: { mode: number; size: number; nlink: number; uid: number; gid: number; mtime: number; mtimeNs: number };
}

export interface Expected {
  fqrn: string;
  manifest: { fields: Record<string, string> };
  catalogs: { mountpoint: string; hash: string; objectPath: string }[];
  entries: Record<string, ExpectedEntry>;
}

export async function loadExpected(): Promise<Expected> {
  return JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
}

export async function makeTempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `cvmfs-${label}-`));
}

/** A writable copy of the fixture repository directory. */
export async function copyFixtureRepository(parent: string): Promise<string> {
  const target = join(parent, FQRN);
  await cp(REPOSITORY_DIR, target, { recursive: true });
  await makeWritable(target);
  return target;
}

async function makeWritable(path: string): Promise<void> {
  const info = await stat(path);
  await chmod(path, info.isDirectory() ? 0o755 : 0o644);
  if (info.isDirectory()) for (const name of await readdir(path)) await makeWritable(join(path, name));
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** Flips one bit of a file at `offset` (negative counts from the end). */
export async function flipByte(path: string, offset: number): Promise<void> {
  const data = await readFile(path);
  const at = offset < 0 ? data.length + offset : offset;
  data[at]! ^= 0x01;
  await writeFile(path, data);
}

/** A manifest with the given fields, signed by the fixture's release-manager key (or `key`). */
export async function signManifest(fields: readonly (readonly [string, string])[], key?: KeyObject): Promise<Buffer> {
  const text = fields.map(([name, value]) => `${name}${value}\n`).join('');
  const hashLine = createHash('sha1').update(text).digest('hex');
  const signature = sign('sha1', Buffer.from(hashLine), key ?? (await readFile(join(KEYS, `${FQRN}.key`), 'utf8')));
  return Buffer.concat([Buffer.from(`${text}--\n${hashLine}\n`), signature]);
}

export interface WhitelistFields {
  fqrn: string;
  /** UTC, YYYYMMDDhhmmss */
  expires: string;
  fingerprints?: readonly string[];
}

export const FIXTURE_CERTIFICATE_FINGERPRINT = 'E9:42:CC:43:55:2F:9A:02:A9:D4:AB:4A:C1:2F:CF:02:E6:23:59:E6';

/** A whitelist signed with the fixture's master key, as `cvmfs_server` makes them. */
export async function signWhitelist(fields: WhitelistFields): Promise<Buffer> {
  const lines = ['20261128223701', `E${fields.expires}`, `N${fields.fqrn}`, ...(fields.fingerprints ?? [FIXTURE_CERTIFICATE_FINGERPRINT])];
  const text = lines.map((line) => `${line}\n`).join('');
  const hashLine = createHash('sha1').update(text).digest('hex');
  const masterKey = await readFile(join(KEYS, `${FQRN}.masterkey`), 'utf8');
  const signature = privateEncrypt({ key: masterKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(hashLine));
  return Buffer.concat([Buffer.from(`${text}--\n${hashLine}\n`), signature]);
}

/** The fixture manifest's fields in their original order, for re-signing with changes. */
export async function fixtureManifestFields(): Promise<[string, string][]> {
  const text = (await readFile(join(REPOSITORY_DIR, '.cvmfspublished'))).toString('latin1');
  return text
    .slice(0, text.indexOf('\n--\n'))
    .split('\n')
    .map((line) => [line[0]!, line.slice(1)]);
}

export function withField(fields: readonly [string, string][], key: string, value: string): [string, string][] {
  return fields.map(([k, v]) => [k, k === key ? value : v]);
}
