// Authorization for one registry, learnt from its challenges: nothing until the first 401, then
// Basic credentials or bearer tokens. Tokens are per scope (repository + actions), cached until
// shortly before they expire, and dropped when the registry refuses them.
import { parseAuthenticateHeader } from './challenge.ts';
import type { Credentials } from './credentials.ts';
import { RegistryError } from './errors.ts';
import { credentialsRejected, requestBearerToken, type BearerToken } from './token.ts';

// Renew this long before a token's stated expiry, so it does not lapse in flight.
const EXPIRY_MARGIN_MS = 10_000;

type Challenge = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service: string | undefined };

export class RegistryAuthorizer {
  readonly #registry: string;
  readonly #loadCredentials: () => Promise<Credentials | undefined>;
  #credentials: Promise<Credentials | undefined> | undefined;
  #challenge: Challenge | undefined;
  // Promises, so concurrent requests for one scope share a single token request.
  readonly #tokens = new Map<string, Promise<BearerToken>>();

  /** `loadCredentials` runs at most once, and only when the registry asks for authentication. */
  constructor(registry: string, loadCredentials: () => Promise<Credentials | undefined>) {
    this.#registry = registry;
    this.#loadCredentials = loadCredentials;
  }

  /** The Authorization header for a request needing `scope`, or undefined while none is known to be needed. */
  async authorization(scope: string): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const credentials = await this.#credentialsOnce();
      if (credentials?.kind !== 'password') return undefined;
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    const cached = this.#tokens.get(scope);
    const token = cached && (await cached.catch(() => undefined));
    if (token && token.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return `Bearer ${token.value}`;
    const pending = this.#credentialsOnce().then((credentials) =>
      requestBearerToken({ registry: this.#registry, realm: challenge.realm, service: challenge.service, scope, credentials }),
    );
    this.#tokens.set(scope, pending);
    try {
      return `Bearer ${(await pending).value}`;
    } catch (error) {
      if (this.#tokens.get(scope) === pending) this.#tokens.delete(scope);
      throw error;
    }
  }

  /**
   * Learns from a 401 so the next attempt can authenticate. `sent` is the Authorization the
   * refused request carried; `repeated` says an earlier attempt already answered a challenge,
   * so another one cannot help and the refusal is reported instead.
   */
  async challenged(header: string | null, scope: string, sent: string | undefined, repeated: boolean): Promise<void> {
    const challenges = parseAuthenticateHeader(header ?? '');
    const bearer = challenges.find((challenge) => challenge.scheme === 'bearer' && challenge.params.has('realm'));
    const basic = challenges.find((challenge) => challenge.scheme === 'basic');
    const credentials = await this.#credentialsOnce();
    if (bearer) {
      this.#tokens.delete(scope);
      if (repeated) {
        const denied = `${this.#registry}: access to ${scope} denied`;
        throw credentials === undefined
          ? new RegistryError('unauthorized', `${denied}; the repository does not exist or needs a login (\`docker login ${this.#registry}\`)`)
          : new RegistryError('denied', `${denied} for the credentials from ${credentials.source}; the repository does not exist or they lack that right`);
      }
      this.#challenge = { scheme: 'bearer', realm: bearer.params.get('realm')!, service: bearer.params.get('service') };
      return;
    }
    if (basic) {
      if (credentials?.kind !== 'password') {
        throw new RegistryError(
          'unauthorized',
          `${this.#registry} requires a login (Basic authentication); run \`docker login ${this.#registry}\` or configure a credential helper`,
        );
      }
      if (repeated || sent?.startsWith('Basic ')) throw credentialsRejected(this.#registry, credentials);
      this.#challenge = { scheme: 'basic' };
      return;
    }
    const shown = JSON.stringify(header ?? '');
    throw new RegistryError('protocol', `${this.#registry} answered 401 without a Bearer or Basic challenge (WWW-Authenticate: ${shown})`);
  }

  #credentialsOnce(): Promise<Credentials | undefined> {
    this.#credentials ??= this.#loadCredentials();
    return this.#credentials;
  }
}
