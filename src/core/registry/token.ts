// Bearer tokens from a registry's token server (distribution spec "token authentication"):
// GET <realm>?service=…&scope=… (Basic auth when there is a login), or, for an identity token,
// the OAuth2 refresh-token grant by POST.
import { RegistryError } from './errors.ts';
import type { Credentials } from './credentials.ts';
import { failureError, send } from './http.ts';

export interface BearerToken {
  value: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface TokenRequest {
  /** The registry the token is for, to name it in errors. */
  registry: string;
  realm: string;
  service: string | undefined;
  /** e.g. `repository:library/redis:pull` */
  scope: string;
  credentials: Credentials | undefined;
}

// The spec's default lifetime when a token server does not say.
const DEFAULT_EXPIRES_IN_SECONDS = 60;
const CLIENT_ID = 'cvmfs-graphdriver';

export async function requestBearerToken(request: TokenRequest): Promise<BearerToken> {
  let url: URL;
  try {
    url = new URL(request.realm);
  } catch {
    throw new RegistryError('protocol', `${request.registry}: the token realm ${JSON.stringify(request.realm)} in its challenge is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new RegistryError('protocol', `${request.registry}: the token realm ${request.realm} is not an http(s) URL`);
  }
  const { credentials } = request;
  const what = `${request.registry}: token for ${request.scope} from ${url.host}`;
  let init: RequestInit;
  if (credentials?.kind === 'identity-token') {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.token, client_id: CLIENT_ID, scope: request.scope });
    if (request.service !== undefined) form.set('service', request.service);
    init = { method: 'POST', body: form };
  } else {
    if (request.service !== undefined) url.searchParams.set('service', request.service);
    url.searchParams.set('scope', request.scope);
    const headers: Record<string, string> = {};
    if (credentials?.kind === 'password') {
      headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    init = { headers };
  }
  const started = Date.now();
  const response = await send(url, init, what);
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel();
    throw credentials === undefined
      ? new RegistryError(
          'unauthorized',
          `${request.registry} requires a login (its token server ${url.host} refused anonymous access); ` +
            `run \`docker login ${request.registry}\` or configure a credential helper`,
        )
      : credentialsRejected(request.registry, credentials);
  }
  if (!response.ok) throw await failureError(response, what);
  let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
  try {
    answer = (await response.json()) as typeof answer;
  } catch {
    throw new RegistryError('protocol', `${what}: the answer is not JSON`);
  }
  const value = typeof answer.token === 'string' && answer.token !== '' ? answer.token : answer.access_token;
  if (typeof value !== 'string' || value === '') throw new RegistryError('protocol', `${what}: the answer holds no token`);
  const lifetime = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : DEFAULT_EXPIRES_IN_SECONDS;
  const issuedAt = typeof answer.issued_at === 'string' ? Date.parse(answer.issued_at) : Number.NaN;
  return { value, expiresAt: (Number.isNaN(issuedAt) ? started : issuedAt) + lifetime * 1000 };
}

export function credentialsRejected(registry: string, credentials: Credentials): RegistryError {
  const who = credentials.kind === 'password' ? `user ${JSON.stringify(credentials.username)}` : 'the identity token';
  return new RegistryError(
    'unauthorized',
    `${registry} rejected the credentials of ${who} from ${credentials.source}; log in again with \`docker login ${registry}\` (or fix the credential helper)`,
  );
}
