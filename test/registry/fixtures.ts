// Shared pieces of the registry client tests: temp dirs, seeding the test registry with images,
// and clients that retry quickly and never read the machine's own Docker config.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient, type RegistryClientOptions } from '../../src/core/registry/client.ts';
import { resolveEndpoint } from '../../src/core/registry/endpoint.ts';
import type { RetryPolicy } from '../../src/core/registry/retry.ts';
import type { AfterHook } from '../helpers/process.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { writeImageDirectory, type TestImage, type TestIndex } from './test-images.ts';

export const FAST_RETRY: RetryPolicy = { attempts: 3, delayMs: 20 };

/** A temp dir removed when the test or suite ends. */
export async function tempDir(hook: AfterHook, purpose: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `registry-${purpose}-`));
  hook.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Pushes an image or index to `target` (`repository:tag`) through a skopeo `dir:` layout in `workDir`. */
export async function seed(registry: TestRegistry, workDir: string, target: string, content: TestImage | TestIndex): Promise<void> {
  const dir = join(workDir, target.replaceAll(/[/:]/g, '_'));
  await writeImageDirectory(dir, content);
  await registry.pushDirectory(dir, target);
}

/**
 * A client for `host` (default the registry's); Docker's config is looked up in `dockerConfigDir`
 * only, so whatever `docker login` left on this machine cannot change the outcome.
 */
export function testClient(host: string, options: RegistryClientOptions & { dockerConfigDir?: string } = {}): RegistryClient {
  const { dockerConfigDir = '/nonexistent', ...rest } = options;
  return new RegistryClient(resolveEndpoint(host), { retry: FAST_RETRY, env: { DOCKER_CONFIG: dockerConfigDir, PATH: process.env.PATH }, ...rest });
}
