// Content digests as registries name blobs and manifests: `sha256:<64 lowercase hex>`. Other
// algorithms (sha512 is allowed by OCI) are refused rather than passed through unverified.
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.ts';

const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
// The general digest grammar of the distribution spec, to tell "unsupported" from "malformed".
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** What is wrong with `text` as a digest, or undefined when it is a sha256 digest. */
export function digestProblem(text: string): string | undefined {
  if (SHA256_DIGEST.test(text)) return undefined;
  if (ANY_DIGEST.test(text) && !text.startsWith('sha256:')) {
    return `digest algorithm "${text.slice(0, text.indexOf(':'))}" is not supported (only sha256)`;
  }
  return `"${text}" is not a digest (sha256:<64 lowercase hex digits>)`;
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The digest and size a blob or manifest must have, as a descriptor states them. */
export interface ExpectedContent {
  digest: string;
  size: number;
}

/**
 * Hashes and counts content as it streams past and refuses it as soon as it is longer than
 * expected, so a server sending endless data cannot fill a disk; finish() checks the rest.
 */
export class ContentVerifier {
  readonly #expected: ExpectedContent;
  readonly #what: string;
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;

  /** `what` names the content in errors, e.g. `blob sha256:… of library/redis`. */
  constructor(expected: ExpectedContent, what: string) {
    this.#expected = expected;
    this.#what = what;
  }

  get bytes(): number {
    return this.#bytes;
  }

  update(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#expected.size) {
      throw new RegistryError('bad-digest', `${this.#what}: the registry sent more than the expected ${this.#expected.size} bytes`);
    }
    this.#hash.update(chunk);
  }

  finish(): void {
    if (this.#bytes !== this.#expected.size) {
      throw new RegistryError('bad-digest', `${this.#what}: got ${this.#bytes} bytes, expected ${this.#expected.size}`);
    }
    const actual = `sha256:${this.#hash.digest('hex')}`;
    if (actual !== this.#expected.digest) {
      throw new RegistryError('bad-digest', `${this.#what}: content has digest ${actual}, expected ${this.#expected.digest}`);
    }
  }
}
