// Authenticated requests to one registry's /v2/ API. Each request names the repository and the
// access it needs, which is the token scope; a 401 is answered once by authenticating, then
// reported. Statuses the caller did not ask for become RegistryErrors.
import { RegistryAuthorizer } from './authorizer.ts';
import { dockerCredentials, type Credentials } from './credentials.ts';
import { resolveEndpoint, type RegistryEndpoint } from './endpoint.ts';
import { failureError, send } from './http.ts';
import type { ImageReference } from './reference.ts';
import { retrying, type RetryPolicy } from './retry.ts';

export interface RegistryClientOptions {
  /** Use these instead of the ones in Docker's config.json. */
  credentials?: Credentials;
  /** Where DOCKER_CONFIG, HOME and a credential helper's PATH are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How often to try a request that fails on the network or with 5xx/429; default 5 attempts from 500 ms. */
  retry?: RetryPolicy;
}

export type Access = 'pull' | 'push';

type RequestBody = NonNullable<RequestInit['body']>;

export interface RegistryRequest {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT';
  repository: string;
  access: Access;
  /** Names the request in errors, e.g. `manifest library/redis:7`. */
  what: string;
  headers?: Record<string, string>;
  /** Made afresh for each attempt, since a request body cannot be sent twice. */
  body?: () => RequestBody | Promise<RequestBody>;
  /** Statuses besides 2xx handed back rather than thrown, e.g. 404 for "is it there?". */
  acceptStatuses?: readonly number[];
}

const DEFAULT_RETRY: RetryPolicy = { attempts: 5, delayMs: 500 };

export class RegistryClient {
  readonly endpoint: RegistryEndpoint;
  readonly retryPolicy: RetryPolicy;
  readonly #authorizer: RegistryAuthorizer;

  constructor(endpoint: RegistryEndpoint, options: RegistryClientOptions = {}) {
    this.endpoint = endpoint;
    this.retryPolicy = options.retry ?? DEFAULT_RETRY;
    const { credentials, env = process.env } = options;
    this.#authorizer = new RegistryAuthorizer(endpoint.registry, async () => credentials ?? dockerCredentials(endpoint.registry, env));
  }

  /** A client for the reference's registry, or for `registryUrl` (make-thin's --registry) when given. */
  static forReference(reference: ImageReference, options: RegistryClientOptions & { registryUrl?: string } = {}): RegistryClient {
    return new RegistryClient(resolveEndpoint(reference.registry, options.registryUrl), options);
  }

  get registry(): string {
    return this.endpoint.registry;
  }

  /** `<base>/v2/<repository>/<path>`, e.g. path `manifests/latest`. */
  apiUrl(repository: string, path: string): URL {
    const base = this.endpoint.baseUrl;
    return new URL(`${base.pathname.replace(/\/$/, '')}/v2/${repository}/${path}`, base);
  }

  async request(url: URL, request: RegistryRequest): Promise<Response> {
    const scope = `repository:${request.repository}:${request.access === 'push' ? 'pull,push' : 'pull'}`;
    const what = `${this.registry}: ${request.what}`;
    for (let attempt = 1; ; attempt++) {
      const headers = new Headers(request.headers);
      // Credentials go to the registry only, not to an upload URL it may point elsewhere.
      const authorization = url.origin === this.endpoint.baseUrl.origin ? await this.#authorizer.authorization(scope) : undefined;
      if (authorization !== undefined) headers.set('authorization', authorization);
      const body = request.body && (await request.body());
      // A redirect to another origin (blob storage) drops Authorization, as the fetch standard says.
      const response = await send(url, { method: request.method ?? 'GET', headers, body, redirect: 'follow' }, what);
      if (response.status === 401) {
        await response.body?.cancel();
        await this.#authorizer.challenged(response.headers.get('www-authenticate'), scope, authorization, attempt > 1);
        continue;
      }
      if (response.ok || request.acceptStatuses?.includes(response.status)) return response;
      throw await failureError(response, what);
    }
  }

  /** Runs `operation` again after transient failures, by this client's retry policy. */
  retrying<T>(operation: (attempt: number) => Promise<T>): Promise<T> {
    return retrying(this.retryPolicy, operation);
  }
}
