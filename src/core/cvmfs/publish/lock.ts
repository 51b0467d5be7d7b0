// One publisher at a time per publisher directory: the lock file is created exclusively and
// holds the owner's pid. A lock whose process is gone (killed mid-publish) is taken over; the
// revision it was publishing never became visible, since the manifest is written last.
import { open, readFile, rm } from 'node:fs/promises';
import { CvmfsError } from '../errors.ts';
import { log } from '../../log.ts';

export interface HeldLock {
  release(): Promise<void>;
}

export async function acquireLock(path: string, purpose: string): Promise<HeldLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      try {
        await handle.writeFile(`${process.pid} ${purpose} since ${new Date().toISOString()}\n`);
      } finally {
        await handle.close();
      }
      return { release: () => rm(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readHolder(path);
    if (holder !== null && isAlive(holder.pid)) {
      throw new CvmfsError(
        'busy',
        `another publisher holds ${path}: pid ${holder.pid} (${holder.text}); wait for it to finish, or remove the file if that process no longer exists`,
      );
    }
    log.warn(`taking over ${path} from ${holder === null ? 'an unreadable lock' : `pid ${holder.pid}, which no longer runs`}; its unfinished publish left at most unreferenced objects`);
    await rm(path, { force: true });
  }
  throw new CvmfsError('busy', `could not take ${path}: other publishers keep racing for it`);
}

async function readHolder(path: string): Promise<{ pid: number; text: string } | null> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    const pid = Number(text.split(' ', 1)[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? { pid, text } : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
