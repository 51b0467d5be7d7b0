// Replaces a file so that readers see either the old or the new content, never a mix: write a
// temp file beside the work files, flush it to disk, rename it over the target.
import { open, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';

/** `tempDir` must be on the target's file system, or the rename cannot be atomic. */
export async function replaceFile(target: string, data: Buffer | string, tempDir: string, mode = 0o644): Promise<void> {
  const temp = join(tempDir, `${basename(target)}.${process.pid}.new`);
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
