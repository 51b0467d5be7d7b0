// Docker credential helpers (docker-credential-helpers protocol): `docker-credential-<name> get`
// reads a server URL on stdin and prints {"ServerURL","Username","Secret"} as JSON, or fails with
// "credentials not found in native keychain" when it has none.
import { spawn } from 'node:child_process';
import { RegistryError } from './errors.ts';

export interface HelperCredentials {
  username: string;
  secret: string;
}

// Helpers may ask a desktop keyring that waits for a user; do not hang the conversion forever.
const HELPER_TIMEOUT_MS = 60_000;
// The username by which helpers mark the secret as an identity (refresh) token.
export const IDENTITY_TOKEN_USERNAME = '<token>';

/** Runs `docker-credential-<helper> get`; undefined when the helper has nothing for the server. */
export async function runCredentialHelper(helper: string, serverUrl: string, env: NodeJS.ProcessEnv): Promise<HelperCredentials | undefined> {
  const command = `docker-credential-${helper}`;
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    // A PATH in `env` is where spawn looks the command up.
    const child = spawn(command, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    // Not spawn's `timeout` option: its timer outlives a helper that could not be started.
    const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.stdin.on('error', () => {}); // a helper that exits without reading stdin reports itself by its exit code
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new RegistryError(
          'credentials',
          error.code === 'ENOENT'
            ? `credential helper ${command} is not on PATH; install it or remove it from Docker's config.json`
            : `credential helper ${command} could not be run: ${error.message}`,
          { cause: error },
        ),
      );
    });
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      resolve({ code: exitCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.end(serverUrl);
  });
  if (code !== 0) {
    if (/credentials not found/i.test(stdout + stderr)) return undefined;
    const why = code === null ? `was killed (no answer within ${HELPER_TIMEOUT_MS / 1000} s?)` : `exited with ${code}`;
    throw new RegistryError('credentials', `credential helper ${command} ${why} for ${serverUrl}: ${(stderr || stdout).trim()}`);
  }
  let answer: unknown;
  try {
    answer = JSON.parse(stdout);
  } catch {
    throw new RegistryError('credentials', `credential helper ${command} printed something that is not JSON for ${serverUrl}`);
  }
  const { Username: username, Secret: secret } = (answer ?? {}) as { Username?: unknown; Secret?: unknown };
  if (typeof username !== 'string' || typeof secret !== 'string') {
    throw new RegistryError('credentials', `credential helper ${command} answered without Username and Secret strings for ${serverUrl}`);
  }
  return { username, secret };
}
