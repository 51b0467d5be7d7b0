import fs from 'node:fs/promises';
import path from 'node:path';
import type { InitRequest } from './protocol.ts';

// dockerd sends Init once per daemon start and never again, even when the plugin restarts, so
// the driver keeps what Init told it on disk and picks it up when it starts.

export async function saveInitState(file: string, request: InitRequest): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(temp, JSON.stringify(request));
  await fs.rename(temp, file);
}

export async function loadInitState(file: string): Promise<InitRequest | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const state = JSON.parse(text) as InitRequest;
  if (typeof state.Home !== 'string' || !path.isAbsolute(state.Home)) {
    throw new Error(`${file} does not hold a valid Init request; remove it and restart dockerd`);
  }
  return state;
}
