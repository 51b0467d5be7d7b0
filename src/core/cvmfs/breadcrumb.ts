// The newest revision this cache has accepted for a repository, in the client's own format
// ("<root catalog hash>T<publish time>R<revision>" in cvmfschecksum.<fqrn>). A manifest older
// than the breadcrumb is refused, so a stale mirror or proxy can never roll a repository back.
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CvmfsError } from './errors.ts';
import { formatContentHash, parseContentHash, type ContentHash } from './hash.ts';

export interface Breadcrumb {
  rootCatalog: ContentHash;
  publishedAt: number;
  revision: number;
}

function breadcrumbPath(cacheDirectory: string, fqrn: string): string {
  return join(cacheDirectory, `cvmfschecksum.${fqrn}`);
}

export async function readBreadcrumb(cacheDirectory: string, fqrn: string): Promise<Breadcrumb | null> {
  let text;
  try {
    text = await readFile(breadcrumbPath(cacheDirectory, fqrn), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const match = /^([0-9a-z-]+)T(\d+)R(\d+)\s*$/.exec(text);
  if (match === null) throw new CvmfsError('config', `breadcrumb ${breadcrumbPath(cacheDirectory, fqrn)} is malformed; delete it to start afresh`);
  return { rootCatalog: parseContentHash(match[1]!), publishedAt: Number(match[2]), revision: Number(match[3]) };
}

/** Refuses a revision or publish time older than what this cache has already accepted. */
export function checkNotOlder(crumb: Breadcrumb | null, candidate: Breadcrumb, fqrn: string, source: string): void {
  if (crumb === null) return;
  if (candidate.revision < crumb.revision || candidate.publishedAt < crumb.publishedAt) {
    throw new CvmfsError(
      'outdated',
      `${source} serves revision ${candidate.revision} (published ${candidate.publishedAt}) of ${fqrn}, but this cache has already seen ` +
        `revision ${crumb.revision} (published ${crumb.publishedAt}); the server or a proxy in front of it is stale. ` +
        `Use another server, or delete cvmfschecksum.${fqrn} in the cache directory to accept the older revision.`,
    );
  }
}

/** Records the accepted revision if it is newer than the recorded one. */
export async function advanceBreadcrumb(cacheDirectory: string, fqrn: string, candidate: Breadcrumb): Promise<void> {
  const current = await readBreadcrumb(cacheDirectory, fqrn);
  if (current !== null && candidate.revision <= current.revision && candidate.publishedAt <= current.publishedAt) return;
  const path = breadcrumbPath(cacheDirectory, fqrn);
  const tempPath = `${path}.${process.pid}.${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tempPath, `${formatContentHash(candidate.rootCatalog)}T${candidate.publishedAt}R${candidate.revision}`);
    await rename(tempPath, path);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
}
