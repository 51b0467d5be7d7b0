// Catalog rows are keyed by the MD5 of the full repository path, split into two little-endian
// signed 64-bit integers (md5path_1/2, parent_1/2). Paths are "" for the root and "/a/b" below it.
import { hash } from 'node:crypto';

export type PathHash = readonly [bigint, bigint];

export function pathHash(path: string): PathHash {
  // The one-shot form: a lookup hashes a path or two, a directory's listing one per entry.
  const digest = hash('md5', path, 'buffer');
  return [digest.readBigInt64LE(0), digest.readBigInt64LE(8)];
}

/** The parent of "/a/b" is "/a", the parent of "/a" is "" (the root). */
export function parentPath(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/**
 * Turns what a caller typed ("/", "a/b/", "/a//b/./c/..") into the catalog form ("" or "/a/b").
 * `..` is resolved lexically; no name in a catalog can be "." or "..".
 */
export function normalizeRepositoryPath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '' && part !== '.') parts.push(part);
  }
  return parts.map((part) => `/${part}`).join('');
}
