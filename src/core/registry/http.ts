// The one place requests leave the process: debug logging, and network failures turned into
// RegistryErrors that name what was being fetched.
import { log } from '../log.ts';
import { RegistryError } from './errors.ts';

const USER_AGENT = 'cvmfs-graphdriver';

export async function send(url: URL, init: RequestInit, what: string): Promise<Response> {
  const method = init.method ?? 'GET';
  const headers = new Headers(init.headers);
  headers.set('user-agent', USER_AGENT);
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers });
  } catch (error) {
    throw networkError(`${what}: cannot reach ${url.host}`, error);
  }
  log.debug(`registry: ${method} ${url.href} -> ${response.status}${response.redirected ? ` (redirected to ${new URL(response.url).host})` : ''}`);
  return response;
}

/** A failure of the connection itself, with the cause fetch hides in `cause` spelled out. */
export function networkError(context: string, error: unknown): RegistryError {
  const cause = (error as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
  return new RegistryError('unreachable', `${context}: ${detail}`, { cause: error });
}

/**
 * The status and the registry's own explanation, from the distribution spec's error body
 * `{"errors":[{"code","message","detail"}]}` when there is one, e.g.
 * `404 Not Found (MANIFEST_UNKNOWN: manifest unknown)`.
 */
async function describeFailure(response: Response): Promise<string> {
  let body = '';
  try {
    body = await response.text();
  } catch {
    // The status alone still says what happened.
  }
  const status = `${response.status} ${response.statusText}`.trim();
  let explanation = '';
  try {
    const { errors } = JSON.parse(body) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    explanation = (errors ?? []).map((error) => [error.code, error.message].filter((part) => typeof part === 'string' && part !== '').join(': ')).join('; ');
  } catch {
    // Proxies and token servers answer in plain text or HTML; show a little of it.
    explanation = body.trim().slice(0, 200);
  }
  return explanation === '' ? status : `${status} (${explanation})`;
}

/** A RegistryError for a response the caller did not want; 5xx and 429 count as temporary. */
export async function failureError(response: Response, what: string): Promise<RegistryError> {
  const description = await describeFailure(response);
  const { status } = response;
  const code = status === 404 ? 'not-found' : status === 403 ? 'denied' : status === 429 || status >= 500 ? 'unavailable' : 'protocol';
  return new RegistryError(code, `${what}: ${description}`);
}
