// Which directories of a repository the mounts on this host looked into, kept next to the cache
// (one small JSON list per repository). A mount reads it as it starts and has those directories'
// lookup tables built, with their cached files registered for passthrough, before a program asks:
// a container started again looks into the same directories of the same layers, and on a freshly
// started mount each first look into a directory otherwise waits for its table to be built.
// The mount writes the list when it ends: its own directories first, then earlier ones, bounded.
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { log } from '../log.ts';

/** Directories a list keeps; building one table costs a mount ~0.5-3 ms when it starts. */
export const MAX_DIRECTORIES_KEPT = 256;

const LIST_DIR = 'directories-in-use';

export function directoriesInUseFile(cacheDirectory: string, fqrn: string): string {
  return path.join(cacheDirectory, LIST_DIR, `${fqrn}.json`);
}

/** The repositories mounts on this host kept lists for, the most recently ended mount's first. */
export async function repositoriesWithDirectoriesInUse(cacheDirectory: string): Promise<string[]> {
  const dir = path.join(cacheDirectory, LIST_DIR);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.json'));
  const written = await Promise.all(names.map(async (name) => ({ fqrn: name.slice(0, -'.json'.length), mtimeMs: (await stat(path.join(dir, name)).catch(() => undefined))?.mtimeMs ?? 0 })));
  return written.toSorted((a, b) => b.mtimeMs - a.mtimeMs).map((entry) => entry.fqrn);
}

/** The repository paths in `file`, most recently used first; none if it is missing or damaged. */
export async function readDirectoriesInUse(file: string): Promise<string[]> {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') log.warn(`${file}: ${(error as Error).message}; mounting without it`);
    return [];
  }
  try {
    const paths: unknown = JSON.parse(text);
    if (!Array.isArray(paths) || !paths.every((entry) => typeof entry === 'string' && entry.startsWith('/'))) throw new Error('not a list of repository paths');
    return (paths as string[]).slice(0, MAX_DIRECTORIES_KEPT);
  } catch (error) {
    log.warn(`${file} is damaged (${(error as Error).message}); it will be written anew when this mount ends`);
    return [];
  }
}

/** Puts `used` (this mount's, in order) before the paths `file` lists, and writes it whole or not at all. */
export async function writeDirectoriesInUse(file: string, used: readonly string[]): Promise<void> {
  const paths = [...new Set([...used, ...(await readDirectoriesInUse(file))])].slice(0, MAX_DIRECTORIES_KEPT);
  await mkdir(path.dirname(file), { recursive: true });
  const staging = `${file}.${process.pid}.tmp`;
  await writeFile(staging, `${JSON.stringify(paths, null, 1)}\n`);
  await rename(staging, file);
}
