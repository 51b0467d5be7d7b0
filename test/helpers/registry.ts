// A real registry for tests: Debian's docker-registry (distribution 2.8) as a child process on
// 127.0.0.1 and a port it picks itself, with its storage, config and log in a temp dir.
// Optionally it demands Basic auth (a bcrypt htpasswd file made by apache2-utils' htpasswd) or
// bearer tokens from a token server run in-process here, which signs ES256 JWTs with a temp
// key whose self-signed certificate is the registry's rootcertbundle. Images go in with skopeo.
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, pollUntil, run, spawnLogged, tailFile, terminate, type ServerPlace, type Stoppable } from './process.ts';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';
const TOKEN_ISSUER = 'cvmfsgd-test-token-issuer';
const TOKEN_SERVICE = 'cvmfsgd-test-registry';

export interface TokenServerOptions {
  /** Users and passwords; they get pull and push on every repository. */
  users?: Record<string, string>;
  /** OAuth2 refresh tokens (Docker's `identitytoken`) and the user each stands for. */
  refreshTokens?: Record<string, string>;
  /** Whether requests without credentials get pull access; default true. */
  anonymousPull?: boolean;
  /** Token lifetime in seconds; default 300. */
  expiresIn?: number;
}

export interface RegistryOptions {
  basicAuth?: { username: string; password: string };
  tokenAuth?: TokenServerOptions;
  /** Where the registry runs; default this host's loopback. */
  place?: ServerPlace;
}

/** One request the token server answered (or refused). */
export interface TokenRequestRecord {
  method: string;
  /** Every scope asked for, space-separated; '' for none. */
  scope: string;
  /** The authenticated user; undefined for anonymous requests and refused credentials. */
  user: string | undefined;
  status: number;
}

export interface TestRegistry extends Stoppable {
  /** `127.0.0.1:<port>`, the registry's name in image references. */
  readonly host: string;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  /** Requests to the token server, oldest first; empty without token auth. */
  readonly tokenRequests: TokenRequestRecord[];
  /** Pushes a skopeo `dir:` layout (all platforms, digests kept) to `repository:tag`. */
  pushDirectory(dir: string, target: string): Promise<void>;
  /** Kills the registry by PID, closes the token server and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'registry-test-'));
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  const logPath = join(dir, 'registry.log');
  try {
    let authSection = '';
    // The credentials skopeo pushes with.
    let pushCredentials: string | undefined;
    if (options.basicAuth) {
      const { username, password } = options.basicAuth;
      await writeFile(join(dir, 'htpasswd'), await htpasswdLine(username, password));
      authSection = `auth:\n  htpasswd:\n    realm: cvmfsgd-test\n    path: ${join(dir, 'htpasswd')}\n`;
      pushCredentials = `${username}:${password}`;
    } else if (options.tokenAuth) {
      tokenServer = await startTokenServer(dir, options.tokenAuth);
      authSection =
        `auth:\n  token:\n    realm: ${tokenServer.url}/token\n    service: ${TOKEN_SERVICE}\n` +
        `    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${tokenServer.certificatePath}\n`;
      const [user] = Object.entries(options.tokenAuth.users ?? {});
      pushCredentials = user && `${user[0]}:${user[1]}`;
    }
    const configPath = join(dir, 'config.yml');
    const place = options.place ?? LOOPBACK;
    // Port 0: the registry binds a free port itself and logs it, so no port can be taken in between.
    await writeFile(
      configPath,
      `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: ${join(dir, 'storage')}
  delete:
    enabled: true
http:
  addr: ${place.address}:0
  secret: ${randomBytes(16).toString('hex')}
${authSection}`,
    );
    child = spawnLogged(...place.command(REGISTRY_BINARY, ['serve', configPath]), logPath);
    const started = child;
    let spawnError: Error | undefined;
    started.once('error', (error) => (spawnError = error));
    let host: string | undefined;
    await pollUntil(
      async () => {
        if (spawnError) throw new Error(`${REGISTRY_BINARY} could not start (apt-get install docker-registry): ${spawnError.message}`);
        if (started.exitCode !== null) throw new Error(`docker-registry exited with ${started.exitCode}:\n${tailFile(logPath)}`);
        host = /msg="listening on ([\d.]+:\d+)"/.exec(readFileSync(logPath, 'utf8'))?.[1];
        return host !== undefined && (await answers(`http://${host}/v2/`));
      },
      15_000,
      () => `docker-registry is not serving:\n${tailFile(logPath)}`,
    );
    const registryHost = host!;
    let stopped = false;
    return {
      host: registryHost,
      baseUrl: `http://${registryHost}`,
      tokenRequests: tokenServer?.requests ?? [],
      async pushDirectory(source, target) {
        const credentials = pushCredentials === undefined ? ['--dest-no-creds'] : ['--dest-creds', pushCredentials];
        await run('skopeo', [
          'copy',
          '--quiet',
          '--all',
          '--preserve-digests',
          '--dest-tls-verify=false',
          ...credentials,
          `dir:${source}`,
          `docker://${registryHost}/${target}`,
        ]);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await terminate(started, 5_000);
        await tokenServer?.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (child) await terminate(child, 5_000);
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url);
    await response.body?.cancel();
    return response.status === 200 || response.status === 401;
  } catch {
    return false;
  }
}

/** A bcrypt htpasswd line; the registry accepts no other hash. */
async function htpasswdLine(username: string, password: string): Promise<string> {
  try {
    return (await run('htpasswd', ['-nbB', username, password])).stdout;
  } catch (error) {
    throw new Error(`htpasswd (apt-get install apache2-utils) is needed for Basic auth tests: ${(error as Error).message}`);
  }
}

interface TokenServer {
  url: string;
  certificatePath: string;
  requests: TokenRequestRecord[];
  stop(): Promise<void>;
}

async function startTokenServer(dir: string, options: TokenServerOptions): Promise<TokenServer> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPath = join(dir, 'token-key.pem');
  const certificatePath = join(dir, 'token-cert.pem');
  await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // node:crypto cannot issue certificates; openssl makes the self-signed root the registry trusts.
  await run('openssl', ['req', '-x509', '-new', '-key', keyPath, '-subj', `/CN=${TOKEN_ISSUER}`, '-days', '2', '-out', certificatePath]);
  // The token carries the certificate (x5c); the registry verifies it against its root bundle.
  const certificateDer = new X509Certificate(readFileSync(certificatePath)).raw.toString('base64');
  const requests: TokenRequestRecord[] = [];

  const server: Server = createServer((request, response) => {
    void answerTokenRequest(request, response, options, requests, (claims) => signToken(claims, privateKey, certificateDer)).catch((error: Error) => {
      response.writeHead(500).end(error.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    certificatePath,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function answerTokenRequest(
  request: IncomingMessage,
  response: ServerResponse,
  options: TokenServerOptions,
  requests: TokenRequestRecord[],
  issue: (claims: object) => string,
): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://token');
  let parameters = url.searchParams;
  if (request.method === 'POST') {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    parameters = new URLSearchParams(Buffer.concat(chunks).toString());
  }
  const scopes = parameters.getAll('scope').flatMap((scope) => scope.split(' ')).filter((scope) => scope !== '');
  const record: TokenRequestRecord = { method: request.method ?? '', scope: scopes.join(' '), user: undefined, status: 200 };
  requests.push(record);

  const authenticated = authenticate(request, parameters, options);
  if (authenticated === 'refused') {
    record.status = 401;
    response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
    return;
  }
  record.user = authenticated;
  const allowed = authenticated !== undefined ? ['pull', 'push'] : options.anonymousPull === false ? [] : ['pull'];
  const access = scopes.map((scope) => {
    // `repository:<name>:<actions>`
    const [type, name, actions = ''] = scope.split(':');
    return { type, name, actions: actions.split(',').filter((action) => allowed.includes(action)) };
  });
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = options.expiresIn ?? 300;
  const token = issue({
    iss: TOKEN_ISSUER,
    sub: authenticated ?? '',
    aud: parameters.get('service') ?? '',
    exp: now + expiresIn,
    nbf: now - 1,
    iat: now,
    jti: randomUUID(),
    access,
  });
  response
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
}

/** The user the request authenticates as, undefined for an anonymous one, 'refused' for bad credentials. */
function authenticate(request: IncomingMessage, parameters: URLSearchParams, options: TokenServerOptions): string | undefined | 'refused' {
  if (parameters.get('grant_type') === 'refresh_token') {
    return options.refreshTokens?.[parameters.get('refresh_token') ?? ''] ?? 'refused';
  }
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  if (!header.startsWith('Basic ')) return 'refused';
  const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString();
  const colon = decoded.indexOf(':');
  const [user, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
  return colon !== -1 && options.users?.[user] === password ? user : 'refused';
}

function signToken(claims: object, privateKey: KeyObject, certificateDer: string): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ typ: 'JWT', alg: 'ES256', x5c: [certificateDer] })}.${encode(claims)}`;
  // JWS wants ES256 signatures as raw r||s, not DER.
  const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${signature.toString('base64url')}`;
}
