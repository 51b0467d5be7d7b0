// Reads a repository straight from its storage directory (what a web server would serve).
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmfsError, describeError } from './errors.ts';
import type { BodyConsumer, ObjectSource } from './object-source.ts';

export class DirectorySource implements ObjectSource {
  readonly description: string;
  readonly #directory: string;

  constructor(directory: string) {
    this.#directory = directory;
    this.description = directory;
  }

  async fetch<T>(relativePath: string, consume: BodyConsumer<T>): Promise<T> {
    const path = join(this.#directory, relativePath);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new CvmfsError('unreachable', `cannot read ${path}: ${describeError(error)}`, { cause: error });
      }
      // A missing object means a damaged repository; a missing manifest, no repository at all.
      throw relativePath.startsWith('data/')
        ? new CvmfsError('bad-data', `${path} does not exist; the repository directory ${this.#directory} is incomplete`, { cause: error })
        : new CvmfsError('unreachable', `${path} does not exist; is ${this.#directory} the storage directory of a CernVM-FS repository?`, { cause: error });
    }
    const body = handle.createReadStream();
    try {
      return await consume(body, path);
    } finally {
      body.destroy();
    }
  }

  close(): void {}
}
