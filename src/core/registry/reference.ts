// Image references with Docker's rules (distribution/reference, "normalized named"):
// `[registry[:port]/]repository[:tag][@digest]`. The first path component names a registry
// only if it looks like a host (has a `.` or `:`, is `localhost`, or has capitals); otherwise the
// image is on Docker Hub, where single names are official images under `library/`.
import { digestProblem } from './digest.ts';
import { RegistryError } from './errors.ts';

/** Docker Hub as references spell it; its API lives at registry-1.docker.io (see endpoint.ts). */
export const DOCKER_HUB = 'docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
const DEFAULT_TAG = 'latest';

export interface ImageReference {
  /** `docker.io` for Docker Hub, otherwise `host[:port]` as written. */
  registry: string;
  /** Path inside the registry, e.g. `library/redis`. */
  repository: string;
  /** `latest` when the reference names neither tag nor digest; undefined with a bare digest. */
  tag: string | undefined;
  /** `sha256:<hex>`; when present it, not the tag, selects the manifest. */
  digest: string | undefined;
}

const HOST_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
// A bare image ID; Docker refuses it as a name so `docker pull <id>` cannot be misread.
const IMAGE_ID = /^[a-f0-9]{64}$/;
const URL_SCHEME = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;
const MAX_NAME_LENGTH = 255;

export function parseImageReference(text: string): ImageReference {
  const fail = (why: string): never => {
    throw new RegistryError('bad-reference', `invalid image reference ${JSON.stringify(text)}: ${why}`);
  };
  if (text === '') fail('it is empty');
  if (URL_SCHEME.test(text)) {
    // DUCC wish lists write references as URLs; say how to write them here.
    fail(`a reference has no scheme; write ${text.replace(URL_SCHEME, '')} (and pass --registry <URL> to choose the protocol)`);
  }

  const at = text.indexOf('@');
  const nameAndTag = at === -1 ? text : text.slice(0, at);
  const digest = at === -1 ? undefined : text.slice(at + 1);
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem !== undefined) fail(problem);
  }

  // The tag separator is the last `:` after the last `/`; an earlier `:` is a registry port.
  const colon = nameAndTag.indexOf(':', nameAndTag.lastIndexOf('/') + 1);
  const name = colon === -1 ? nameAndTag : nameAndTag.slice(0, colon);
  const tag = colon === -1 ? undefined : nameAndTag.slice(colon + 1);
  if (tag !== undefined && !TAG.test(tag)) {
    fail(`tag ${JSON.stringify(tag)} is invalid (up to 128 letters, digits, "_", "." and "-", not starting with "." or "-")`);
  }
  if (IMAGE_ID.test(name)) fail('a 64-digit hexadecimal name is an image ID, not a repository');

  let [registry, repository] = splitRegistry(name);
  if (!DOMAIN.test(registry)) fail(`${JSON.stringify(registry)} is not a valid registry host[:port]`);
  if (repository === '') fail('the repository name is missing');
  if (repository.toLowerCase() !== repository) fail('the repository name must be lowercase');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      fail(`${JSON.stringify(component)} is not a valid repository path component (lowercase letters and digits, separated by ".", "_", "__" or "-")`);
    }
  }
  if (registry === LEGACY_DOCKER_HUB) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = OFFICIAL_PREFIX + repository;
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) fail(`the name is longer than ${MAX_NAME_LENGTH} characters`);

  return { registry, repository, tag: tag ?? (digest === undefined ? DEFAULT_TAG : undefined), digest };
}

function splitRegistry(name: string): [registry: string, repository: string] {
  const slash = name.indexOf('/');
  if (slash === -1) return [DOCKER_HUB, name];
  const first = name.slice(0, slash);
  const isHost = /[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first;
  return isHost ? [first, name.slice(slash + 1)] : [DOCKER_HUB, name];
}

/** The fully qualified form, e.g. `docker.io/library/redis:7` or `localhost:5000/x@sha256:…`. */
export function formatImageReference(reference: ImageReference): string {
  const tag = reference.tag === undefined ? '' : `:${reference.tag}`;
  const digest = reference.digest === undefined ? '' : `@${reference.digest}`;
  return `${reference.registry}/${reference.repository}${tag}${digest}`;
}

/** What to ask the registry for under /manifests/: the digest when there is one, else the tag. */
export function manifestSelector(reference: ImageReference): string {
  return reference.digest ?? reference.tag ?? DEFAULT_TAG;
}
