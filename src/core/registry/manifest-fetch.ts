// GET /v2/<name>/manifests/<tag|digest>. The digest of the bytes as served is always computed
// and returned (it names the image from then on); it must equal the digest asked for, and the
// registry's own Docker-Content-Digest when it sends one.
import type { RegistryClient } from './client.ts';
import { sha256Digest, type ExpectedContent } from './digest.ts';
import { RegistryError } from './errors.ts';
import { networkError } from './http.ts';
import { parseManifest, type Manifest } from './manifest.ts';
import { MANIFEST_ACCEPT } from './media-types.ts';

export interface FetchedManifest {
  manifest: Manifest;
  /** `sha256:` of `bytes`. */
  digest: string;
  /** The manifest exactly as served; its digest is computed over these. */
  bytes: Buffer;
}

// The OCI distribution spec lets registries refuse manifests above 4 MiB; nothing real is near it.
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Fetches a manifest by tag or digest. `expected` (from an index entry) is the size and digest
 * it must have; a digest selector is always checked.
 */
export async function fetchManifest(
  client: RegistryClient,
  repository: string,
  selector: string,
  expected?: ExpectedContent,
): Promise<FetchedManifest> {
  const what = `manifest ${repository}${selector.startsWith('sha256:') ? '@' : ':'}${selector}`;
  const context = `${client.registry}: ${what}`;
  const url = client.apiUrl(repository, `manifests/${selector}`);
  const { bytes, contentType, claimedDigest } = await client.retrying(async () => {
    const response = await client.request(url, { repository, access: 'pull', what, headers: { accept: MANIFEST_ACCEPT } });
    return {
      bytes: await readLimited(response, MAX_MANIFEST_BYTES, context),
      contentType: response.headers.get('content-type'),
      claimedDigest: response.headers.get('docker-content-digest'),
    };
  });
  const digest = sha256Digest(bytes);
  const wanted = expected?.digest ?? (selector.startsWith('sha256:') ? selector : undefined);
  if (wanted !== undefined && digest !== wanted) {
    throw new RegistryError('bad-digest', `${context}: content has digest ${digest}, expected ${wanted}`);
  }
  if (expected !== undefined && bytes.length !== expected.size) {
    throw new RegistryError('bad-digest', `${context}: got ${bytes.length} bytes, expected ${expected.size}`);
  }
  if (claimedDigest?.startsWith('sha256:') && claimedDigest !== digest) {
    throw new RegistryError('bad-digest', `${context}: content has digest ${digest}, but the registry says ${claimedDigest}`);
  }
  return { manifest: parseManifest(bytes, contentType, context), digest, bytes };
}

async function readLimited(response: Response, maxBytes: number, context: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of response.body ?? []) {
      length += chunk.byteLength;
      if (length > maxBytes) {
        await response.body?.cancel();
        throw new RegistryError('bad-manifest', `${context}: larger than ${maxBytes} bytes`);
      }
      chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw networkError(`${context}: connection lost`, error);
  }
  return Buffer.concat(chunks);
}
