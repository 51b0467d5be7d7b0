import path from 'node:path';
import { log } from '../core/log.ts';
import { checkClientCanMount, selectRepositoryClients } from './client-selection.ts';
import { OverlayDriver } from './overlay-driver.ts';
import { allowedRepositories, parseRepositorySpec, type RepositoryAccess, type RepositorySpec } from './repository-config.ts';
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
  /** False: the embedded client's mounts serve every read themselves (--no-passthrough). */
  passthrough: boolean;
}

/** Where Init is remembered when --state is not given: beside the socket's name, under /run. */
function defaultStateFile(socket: string): string {
  return path.join('/run/cvmfs-graphdriver', `${path.basename(socket, '.sock')}.init.json`);
}

const REPOSITORIES_VARIABLE = 'CVMFS_GRAPHDRIVER_REPOSITORIES';
// "0" turns passthrough off, for the managed plugin's settings.
const PASSTHROUGH_VARIABLE = 'CVMFS_GRAPHDRIVER_PASSTHROUGH';

/** Repositories from --repository flags and, for the managed plugin's settings, the environment. */
function repositorySpecs(flags: ServeDriverFlags): RepositorySpec[] {
  const fromEnvironment = (process.env[REPOSITORIES_VARIABLE] ?? '').split(/\s+/).filter((spec) => spec !== '');
  return [...flags.repository.map((text) => parseRepositorySpec(text)), ...fromEnvironment.map((text) => parseRepositorySpec(text, REPOSITORIES_VARIABLE))];
}

function describeAllowed(access: RepositoryAccess): string {
  return access.specs.size > 0 ? `thin images may use: ${[...access.specs.keys()].join(', ')}` : `thin images may use any repository configured in ${access.configRoot}`;
}

export async function serveDriverCommand(flags: ServeDriverFlags): Promise<void> {
  const socket = path.resolve(flags.socket);
  const configured = repositorySpecs(flags);
  const specsOf = (specs: readonly RepositorySpec[]) => new Map(specs.map((spec) => [spec.fqrn, spec]));
  // The mounters read `specs` when they mount, so the storage options' repositories join it in place.
  const access: RepositoryAccess = {
    specs: specsOf(configured),
    configRoot: flags.cvmfsConfig,
    cacheDir: flags.cache,
    cacheMb: Number(flags.cacheSize),
    passthrough: flags.passthrough && process.env[PASSTHROUGH_VARIABLE] !== '0',
  };
  const driver = new OverlayDriver(flags.state ? path.resolve(flags.state) : defaultStateFile(socket), {
    mounter: selectRepositoryClients(flags.client, access, flags.logDir),
    repositories(fromStorageOptions) {
      checkClientCanMount(flags.client, fromStorageOptions);
      access.specs.clear();
      for (const [fqrn, spec] of specsOf([...configured, ...fromStorageOptions])) access.specs.set(fqrn, spec);
      if (fromStorageOptions.length > 0) log.info(`storage options add repositories; ${describeAllowed(access)}`);
      return allowedRepositories(access);
    },
  });
  log.info(describeAllowed(access));
  await driver.resume();
  const server = await serveDriver(driver, socket);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info(`${signal}: closing ${socket}; mounts in use stay for dockerd (it sends Cleanup when it stops)`);
      void server
        .close()
        .then(() => driver.unmountPending())
        .catch((err: Error) => log.warn(`unmounting layers no container uses failed: ${err.message}`))
        .then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
