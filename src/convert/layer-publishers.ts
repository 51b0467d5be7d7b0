import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { findOnPath } from '../core/fs/run.ts';
import { log } from '../core/log.ts';
import { isCvmfsError } from '../core/cvmfs/errors.ts';
import { ingest } from '../core/cvmfs/publish/ingest.ts';
import { keyFiles } from '../core/cvmfs/publish/keys.ts';
import { openPublisher } from '../core/cvmfs/publish/publisher.ts';
import { Repository } from '../core/cvmfs/repository.ts';

// Where make-thin puts layers: our own publisher on a repository directory (the embedded
// default, made by `repo init`), or the real `cvmfs_server ingest` on a release manager host.

export interface LayerPublisher {
  readonly name: string;
  readonly fqrn: string;
  /** Whether `repositoryPath` (no leading slash) is published already. */
  has(repositoryPath: string): Promise<boolean>;
  /** Publishes the uncompressed layer tar at `repositoryPath` as a nested catalog, in one revision. */
  ingest(repositoryPath: string, tar: NodeJS.ReadableStream): Promise<void>;
  close(): Promise<void>;
}

export type PublisherChoice = 'auto' | 'embedded' | 'cvmfs_server';

async function embeddedPublisher(directory: string): Promise<LayerPublisher> {
  const publisher = await openPublisher(directory);
  const { fqrn } = publisher.config;
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'make-thin-check-'));
  // Asking the published revision, verified like any client would, what is there already.
  const open = () =>
    Repository.open({
      fqrn,
      location: { directory: publisher.paths.storage },
      publicKeys: keyFiles(publisher.paths.keys, fqrn).publicKey,
      cache: { directory: cacheDir, maxBytes: 256 * 1024 * 1024 },
    });
  return {
    name: `the embedded publisher (${directory})`,
    fqrn,
    async has(repositoryPath) {
      const repository = await open();
      try {
        await repository.lookup(`/${repositoryPath}`);
        return true;
      } catch (error) {
        if (isCvmfsError(error, 'not-found') || isCvmfsError(error, 'not-a-directory')) return false;
        throw error;
      } finally {
        repository.close();
      }
    },
    async ingest(repositoryPath, tar) {
      await ingest(publisher, { tar: tar as AsyncIterable<Buffer>, baseDir: `/${repositoryPath}`, createCatalog: true });
    },
    close: () => rm(cacheDir, { recursive: true, force: true }),
  };
}

function cvmfsServerPublisher(fqrn: string): LayerPublisher {
  return {
    name: 'cvmfs_server',
    fqrn,
    // On a release manager the repository is mounted at /cvmfs/<fqrn>.
    has: async (repositoryPath) => existsSync(path.join('/cvmfs', fqrn, repositoryPath)),
    async ingest(repositoryPath, tar) {
      const child = spawn('cvmfs_server', ['ingest', '--catalog', '-t', '-', '-b', repositoryPath, fqrn], { stdio: ['pipe', 'inherit', 'pipe'] });
      const stderr: Buffer[] = [];
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      const exited = new Promise<number | null>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', resolve);
      });
      try {
        await pipeline(tar, child.stdin);
      } catch (error) {
        child.kill();
        throw error;
      }
      // The upstream converter ignored this status and published thin images of missing layers.
      const code = await exited;
      if (code !== 0) throw new Error(`cvmfs_server ingest of ${repositoryPath} into ${fqrn} failed (exit ${code}): ${Buffer.concat(stderr).toString().trim()}`);
    },
    close: async () => {},
  };
}

function hasCvmfsServer(): boolean {
  return findOnPath('cvmfs_server') !== undefined;
}

/** `repository` is a publisher directory (embedded) or, with cvmfs_server installed, a name. */
export async function openLayerPublisher(repository: string, choice: PublisherChoice): Promise<LayerPublisher> {
  const isDirectory = existsSync(repository) && statSync(repository).isDirectory();
  const useEmbedded = choice === 'embedded' || (choice === 'auto' && (isDirectory || !hasCvmfsServer()));
  if (useEmbedded) {
    if (!isDirectory) {
      throw new Error(`--repository ${repository}: the embedded publisher needs a repository directory (create one with \`cvmfs-graphdriver repo init DIR --name FQRN\`)`);
    }
    const publisher = await embeddedPublisher(repository);
    log.info(`publishing layers with ${publisher.name} into ${publisher.fqrn}`);
    return publisher;
  }
  if (!hasCvmfsServer()) throw new Error('--publisher cvmfs_server: cvmfs_server is not installed here');
  if (isDirectory) throw new Error(`--publisher cvmfs_server takes a repository name, not the directory ${repository}`);
  log.info(`publishing layers with cvmfs_server ingest into ${repository}`);
  return cvmfsServerPublisher(repository);
}
