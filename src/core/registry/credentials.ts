// Registry credentials as `docker login` leaves them in Docker's config.json
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json): a credential helper for the registry
// (`credHelpers`), else the default store (`credsStore`), else inline `auths` entries. As in the
// Docker CLI, a configured helper is authoritative: its "not found" is not followed by `auths`.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { IDENTITY_TOKEN_USERNAME, runCredentialHelper } from './credential-helper.ts';
import { RegistryError } from './errors.ts';
import { DOCKER_HUB } from './reference.ts';

export type Credentials =
  | { kind: 'password'; username: string; password: string; source: string }
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token server for access tokens. */
  | { kind: 'identity-token'; token: string; source: string };

// Docker Hub's credentials live under the v1 index URL for historical reasons.
const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io']);

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  return env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(env.HOME || homedir(), '.docker', 'config.json');
}

/** Credentials for `registry` (`docker.io` or host[:port]) from Docker's config; undefined if none. */
export async function dockerCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const path = dockerConfigPath(env);
  const config = await readDockerConfig(path);
  if (config === undefined) return undefined;
  const isHub = DOCKER_HUB_HOSTS.has(registry);
  const serverUrl = isHub ? DOCKER_HUB_SERVER_URL : registry;
  const matches = (key: string): boolean => key === serverUrl || (isHub ? DOCKER_HUB_HOSTS.has(hostOfKey(key)) : hostOfKey(key) === registry);

  const helperKey = Object.keys(config.credHelpers ?? {}).find(matches);
  const helper = helperKey === undefined ? config.credsStore : config.credHelpers![helperKey];
  if (helper) {
    const found = await runCredentialHelper(helper, serverUrl, env);
    if (found === undefined) return undefined;
    const source = `credential helper docker-credential-${helper}`;
    return found.username === IDENTITY_TOKEN_USERNAME
      ? { kind: 'identity-token', token: found.secret, source }
      : { kind: 'password', username: found.username, password: found.secret, source };
  }

  const authKey = Object.keys(config.auths ?? {}).find(matches);
  if (authKey === undefined) return undefined;
  return fromAuthEntry(config.auths![authKey]!, `"auths" entry ${JSON.stringify(authKey)} in ${path}`);
}

async function readDockerConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryError('credentials', `cannot read Docker's config ${path}: ${(error as Error).message}`, { cause: error });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new RegistryError('credentials', `Docker's config ${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new RegistryError('credentials', `Docker's config ${path} is not a JSON object`);
  }
  return config as DockerConfig;
}

/** Keys in `auths` may be URLs (`https://host/v1/`) or bare hosts; Docker compares hosts. */
function hostOfKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

function fromAuthEntry(entry: NonNullable<DockerConfig['auths']>[string], source: string): Credentials | undefined {
  if (entry.identitytoken) return { kind: 'identity-token', token: entry.identitytoken, source };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) throw new RegistryError('credentials', `${source}: "auth" is not base64 of user:password`);
    return { kind: 'password', username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
  }
  if (entry.username !== undefined && entry.password !== undefined) {
    return { kind: 'password', username: entry.username, password: entry.password, source };
  }
  return undefined; // an empty entry, as `docker login` leaves beside a credsStore
}
