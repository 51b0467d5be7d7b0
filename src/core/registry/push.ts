// Uploading to a registry for `make-thin --push`: blobs by a monolithic upload (POST to open an
// upload session, PUT the content with ?digest=), skipped when the registry has them already, then
// the manifest that references them.
import { openAsBlob } from 'node:fs';
import type { RegistryClient } from './client.ts';
import { sha256Digest, type ExpectedContent } from './digest.ts';
import { RegistryError } from './errors.ts';

/** Blob content from memory or, read as it is sent, from a file. */
export type BlobSource = Uint8Array | { path: string };

/** HEAD of the blob, asking for push access: it serves pushBlob, which then needs no second token. */
export async function blobExists(client: RegistryClient, repository: string, digest: string): Promise<boolean> {
  const response = await client.retrying(() =>
    client.request(client.apiUrl(repository, `blobs/${digest}`), {
      method: 'HEAD',
      repository,
      access: 'push',
      what: `blob ${digest} of ${repository}`,
      acceptStatuses: [404],
    }),
  );
  return response.status !== 404;
}

/** Uploads a blob unless the repository has it; the registry checks the digest and refuses a mismatch. */
export async function pushBlob(client: RegistryClient, repository: string, blob: ExpectedContent, source: BlobSource): Promise<'uploaded' | 'exists'> {
  if (await blobExists(client, repository, blob.digest)) return 'exists';
  const what = `upload of blob ${blob.digest} to ${repository}`;
  await client.retrying(async () => {
    const started = await client.request(client.apiUrl(repository, 'blobs/uploads/'), { method: 'POST', repository, access: 'push', what });
    await started.body?.cancel();
    const location = started.headers.get('location');
    if (location === null) throw new RegistryError('protocol', `${client.registry}: ${what}: no Location for the upload session`);
    // Location may be relative and usually carries the session's own query parameters.
    const target = new URL(location, started.url);
    target.searchParams.set('digest', blob.digest);
    const finished = await client.request(target, {
      method: 'PUT',
      repository,
      access: 'push',
      what,
      headers: { 'content-type': 'application/octet-stream' },
      body: async () => (source instanceof Uint8Array ? source : await openAsBlob(source.path)),
    });
    await finished.body?.cancel();
  });
  return 'uploaded';
}

/** PUTs a manifest under a tag (or its digest) with its media type; returns its digest. */
export async function pushManifest(client: RegistryClient, repository: string, tag: string, bytes: Uint8Array, mediaType: string): Promise<string> {
  const digest = sha256Digest(bytes);
  const what = `manifest ${repository}:${tag}`;
  const response = await client.retrying(() =>
    client.request(client.apiUrl(repository, `manifests/${tag}`), {
      method: 'PUT',
      repository,
      access: 'push',
      what,
      headers: { 'content-type': mediaType },
      body: () => bytes,
    }),
  );
  await response.body?.cancel();
  const stored = response.headers.get('docker-content-digest');
  if (stored !== null && stored !== digest) {
    throw new RegistryError('bad-digest', `${client.registry}: ${what}: the registry stored digest ${stored}, but the manifest sent has ${digest}`);
  }
  return digest;
}
