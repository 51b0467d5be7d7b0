import path from 'node:path';
import { log } from '../core/log.ts';
import { OverlayDriver } from './overlay-driver.ts';
import { serveDriver } from './server.ts';

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
  const driver = new OverlayDriver(flags.state ? path.resolve(flags.state) : defaultStateFile(socket));
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
