import path from 'node:path';
import { log } from '../core/log.ts';
import { selectRepositoryClients } from './client-selection.ts';
import { OverlayDriver } from './overlay-driver.ts';
import { allowedRepositories, parseRepositorySpec, type RepositoryAccess } from './repository-config.ts';
import { serveDriver } from './server.ts';

export interface ServeDriverFlags {
  socket: string;
  state?: string;
  repository: string[];
  cvmfsConfig: string;
  cache: string;
  cacheSize: number;
  logDir: string;
  client: string;
}

/** Where Init is remembered when --state is not given: beside the socket's name, under /run. */
function defaultStateFile(socket: string): string {
  return path.join('/run/cvmfs-graphdriver', `${path.basename(socket, '.sock')}.init.json`);
}

/** Repositories from --repository flags and, for the managed plugin's settings, the environment. */
function repositorySpecs(flags: ServeDriverFlags): RepositoryAccess['specs'] {
  const fromEnvironment = (process.env.CVMFS_GRAPHDRIVER_REPOSITORIES ?? '').split(/\s+/).filter((spec) => spec !== '');
  const specs = new Map();
  for (const text of [...flags.repository, ...fromEnvironment]) {
    const spec = parseRepositorySpec(text);
    specs.set(spec.fqrn, spec);
  }
  return specs;
}

export async function serveDriverCommand(flags: ServeDriverFlags): Promise<void> {
  const socket = path.resolve(flags.socket);
  const access: RepositoryAccess = { specs: repositorySpecs(flags), configRoot: flags.cvmfsConfig, cacheDir: flags.cache, cacheMb: Number(flags.cacheSize) };
  const driver = new OverlayDriver(flags.state ? path.resolve(flags.state) : defaultStateFile(socket), {
    mounter: selectRepositoryClients(flags.client, access, flags.logDir),
    allowedRepositories: allowedRepositories(access),
  });
  if (access.specs.size > 0) log.info(`thin images may use: ${[...access.specs.keys()].join(', ')}`);
  else log.info(`thin images may use any repository configured in ${access.configRoot}`);
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
