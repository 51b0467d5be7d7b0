import path from 'node:path';
import { log } from '../core/log.ts';
import { OverlayDriver } from './overlay-driver.ts';
import type { RepositoryMounter } from './repository-mounts.ts';
import { serveDriver } from './server.ts';

/** Thin layers need a CernVM-FS client; until one is configured their use fails clearly. */
const noRepositoryClient: RepositoryMounter = {
  name: 'no client',
  mount: async (repository) => {
    throw new Error(`cannot mount CernVM-FS repository ${repository}: this build has no CernVM-FS client for thin images yet`);
  },
  unmount: async () => {},
  isAlive: async () => false,
};

export interface ServeDriverFlags {
  socket: string;
  state?: string;
}

/** Where Init is remembered when --state is not given: beside the socket's name, under /run. */
function defaultStateFile(socket: string): string {
  return path.join('/run/cvmfs-graphdriver', `${path.basename(socket, '.sock')}.init.json`);
}

export async function serveDriverCommand(flags: ServeDriverFlags): Promise<void> {
  const socket = path.resolve(flags.socket);
  const driver = new OverlayDriver(flags.state ? path.resolve(flags.state) : defaultStateFile(socket), { mounter: noRepositoryClient });
  await driver.resume();
  const server = await serveDriver(driver, socket);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info(`${signal}: closing ${socket}; mounts stay for dockerd (it sends Cleanup when it stops)`);
      void server.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
