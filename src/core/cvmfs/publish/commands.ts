// `cvmfs-graphdriver repo <action>`: publishing (init, ingest, resign), verifying (check) and
// reading (ls, cat, stat) CernVM-FS repositories from the command line.
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CvmfsError } from '../errors.ts';
import type { Entry } from '../entry.ts';
import { HASH_ALGORITHMS, formatContentHash, type HashAlgorithm } from '../hash.ts';
import { resolveRepository } from '../locator.ts';
import { Repository } from '../repository.ts';
import { checkRepository } from './check.ts';
import { initRepository } from './init.ts';
import { ingest } from './ingest.ts';
import { openPublisher } from './publisher.ts';
import { resignRepository } from './resign.ts';

export interface RepoFlags {
  name?: string;
  hash?: string;
  days?: number | string;
  storage?: string;
  importKeys?: string;
  /** A file; "-" or true (a bare --tar: the CLI parser swallows "-") for stdin. */
  tar?: string | boolean;
  baseDir?: string;
  layer?: string;
  catalog?: boolean;
  delete?: string | string[];
  owner?: string;
  /** False with --no-chunking. */
  chunking?: boolean;
  fqrn?: string;
  key?: string;
  cache?: string;
}

const REPO_ACTIONS = ['init', 'ingest', 'resign', 'check', 'ls', 'cat', 'stat'] as const;

export async function repoCommand(action: string, args: readonly string[], flags: RepoFlags): Promise<void> {
  const [target, path] = args;
  if (target === undefined) throw new CvmfsError('invalid-argument', `repo ${action} needs a directory${['check', 'ls', 'cat', 'stat'].includes(action) ? ' or URL' : ''}; see "repo --help"`);
  switch (action) {
    case 'init':
      return init(target, flags);
    case 'ingest':
      return ingestCommand(target, flags);
    case 'resign': {
      const { expires } = await resignRepository(await openPublisher(target), { days: flags.days === undefined ? undefined : positive(flags.days, '--days') });
      console.log(`whitelist valid until ${expires.toISOString()}`);
      return;
    }
    case 'check': {
      const { fqrn, location, publicKeys } = await resolveRepository({ repository: target, fqrn: flags.fqrn, key: flags.key });
      const report = await checkRepository({ fqrn, location, publicKeys, cacheDirectory: flags.cache });
      console.log(`${fqrn} revision ${report.revision}: no problems found (${report.catalogs} catalogs, ${report.entries} entries, ${report.objects} objects verified)`);
      return;
    }
    case 'ls':
    case 'cat':
    case 'stat':
      return withRepository(target, flags, async (repository) => {
        const entry = await repository.lookup(path ?? '/');
        if (action === 'cat') return writeFileContent(repository, entry);
        if (action === 'stat') return void console.log(JSON.stringify(describeEntry(entry), null, 2));
        const entries = entry.type === 'dir' ? await repository.readdir(entry.path) : [entry];
        for (const listed of entries) console.log(formatListing(listed));
      });
    default:
      throw new CvmfsError('invalid-argument', `unknown action "repo ${action}"; one of: ${REPO_ACTIONS.join(', ')}`);
  }
}

async function init(directory: string, flags: RepoFlags): Promise<void> {
  if (flags.name === undefined) throw new CvmfsError('invalid-argument', 'repo init needs --name <fqrn>, the repository name (like example.cern.ch)');
  const hash = flags.hash ?? 'sha1';
  if (!HASH_ALGORITHMS.includes(hash as HashAlgorithm)) throw new CvmfsError('invalid-argument', `--hash ${hash} is not one of ${HASH_ALGORITHMS.join(', ')}`);
  const result = await initRepository(directory, {
    fqrn: flags.name,
    hashAlgorithm: hash as HashAlgorithm,
    whitelistDays: flags.days === undefined ? undefined : positive(flags.days, '--days'),
    storage: flags.storage,
    importKeysFrom: flags.importKeys,
    chunking: flags.chunking === false ? null : undefined,
  });
  const { paths } = result.publisher;
  console.log(`${result.adopted ? 'adopted' : 'created'} ${flags.name} (${result.publisher.config.hashAlgorithm})`);
  console.log(`serve this directory as http://<host>/cvmfs/${flags.name}/: ${paths.storage}`);
  console.log(`public master key for clients (CVMFS_PUBLIC_KEY): ${result.publicKeyFile}`);
  console.log(`private keys (never serve them): ${paths.keys}`);
}

async function ingestCommand(directory: string, flags: RepoFlags): Promise<void> {
  const publisher = await openPublisher(directory);
  const deletions = flags.delete === undefined ? [] : [flags.delete].flat().map(String);
  const tar =
    flags.tar === undefined || flags.tar === false ? undefined : flags.tar === true || flags.tar === '-' ? process.stdin : createReadStream(flags.tar, { highWaterMark: 1024 * 1024 });
  const result = await ingest(publisher, {
    tar,
    baseDir: flags.baseDir,
    layerDigest: flags.layer,
    createCatalog: flags.catalog === true,
    deletions,
    owner: flags.owner === undefined ? null : parseOwner(flags.owner),
    chunking: flags.chunking === false ? null : undefined,
  });
  const summary = result.summary === null ? '' : `, ${result.summary.entries} tar entries (${result.summary.files} files, ${result.summary.bytes} bytes) below ${result.baseDir || '/'}`;
  console.log(`revision ${result.revision}: root catalog ${formatContentHash(result.rootCatalog)}${summary}; ${result.objectsWritten} new objects, ${result.bytesWritten} bytes`);
}

async function withRepository(target: string, flags: RepoFlags, use: (repository: Repository) => Promise<void>): Promise<void> {
  // A throwaway cache unless one is named: these commands are one-off looks.
  const cacheDirectory = flags.cache ?? (await mkdtemp(join(tmpdir(), 'cvmfs-repo-')));
  try {
    const repository = await Repository.open(await resolveRepository({ repository: target, fqrn: flags.fqrn, key: flags.key, cacheDir: cacheDirectory }));
    try {
      await use(repository);
    } finally {
      repository.close();
    }
  } finally {
    if (flags.cache === undefined) await rm(cacheDirectory, { recursive: true, force: true });
  }
}

async function writeFileContent(repository: Repository, entry: Entry): Promise<void> {
  const piece = 1024 * 1024;
  for (let offset = 0; offset < entry.size; offset += piece) {
    const data = await repository.read(entry, offset, piece);
    if (!process.stdout.write(data)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
}

function describeEntry(entry: Entry): Record<string, unknown> {
  return {
    path: entry.path,
    type: entry.type,
    mode: entry.mode.toString(8).padStart(7, '0'),
    uid: entry.uid,
    gid: entry.gid,
    size: entry.size,
    nlink: entry.nlink,
    mtime: new Date(entry.mtime * 1000).toISOString(),
    ...(entry.symlink !== null && { symlink: entry.symlink }),
    ...(entry.rdev !== null && { rdev: entry.rdev }),
    ...(entry.contentHash !== null && { contentHash: formatContentHash(entry.contentHash) }),
    chunked: entry.chunked,
    ...(entry.xattrs !== null && { xattrs: Object.fromEntries([...entry.xattrs].map(([name, value]) => [name, printable(value)])) }),
    catalog: entry.catalogMountpoint,
  };
}

/** Text when it is plain ASCII, else hex. */
function printable(value: Buffer): string {
  return /^[\x20-\x7e]*$/.test(value.toString('latin1')) ? value.toString('latin1') : `hex:${value.toString('hex')}`;
}

const TYPE_LETTERS: Record<Entry['type'], string> = { dir: 'd', file: '-', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's' };

/** One `ls -l` style line. */
function formatListing(entry: Entry): string {
  const bits = 'rwxrwxrwx'.split('').map((letter, index) => (entry.mode & (0o400 >> index) ? letter : '-'));
  if (entry.mode & 0o4000) bits[2] = bits[2] === 'x' ? 's' : 'S';
  if (entry.mode & 0o2000) bits[5] = bits[5] === 'x' ? 's' : 'S';
  if (entry.mode & 0o1000) bits[8] = bits[8] === 'x' ? 't' : 'T';
  const size = entry.rdev === null ? String(entry.size) : `${entry.rdev.major}, ${entry.rdev.minor}`;
  const when = new Date(entry.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
  const name = entry.symlink === null ? entry.name : `${entry.name} -> ${entry.symlink}`;
  return `${TYPE_LETTERS[entry.type]}${bits.join('')} ${String(entry.nlink).padStart(3)} ${String(entry.uid).padStart(5)} ${String(entry.gid).padStart(5)} ${size.padStart(10)} ${when} ${name}`;
}

function positive(value: number | string, flag: string): number {
  const number = Number(value);
  if (!(number > 0)) throw new CvmfsError('invalid-argument', `${flag} ${value} is not a positive number`);
  return number;
}

function parseOwner(text: string): { uid: number; gid: number } {
  const match = /^(\d+):(\d+)$/.exec(text);
  if (match === null) throw new CvmfsError('invalid-argument', `--owner ${text} is not UID:GID (numbers)`);
  return { uid: Number(match[1]), gid: Number(match[2]) };
}
