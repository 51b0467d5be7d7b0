// Platforms as image indexes describe them (`os/architecture[/variant]` with Go's names), the
// host's own, and choosing an index entry the way containerd's default matcher does: equal
// os and architecture, and the variant if one was asked for ("" and "v8" are the same arm64).
import { arch } from 'node:process';
import { RegistryError } from './errors.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_TO_GO_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mips64le',
};

const PLATFORM = /^[a-z0-9_]+\/[a-z0-9_]+(?:\/[a-z0-9_]+)?$/;

/** `linux/arm64/v8` → { os, architecture, variant }. */
export function parsePlatform(text: string): Platform {
  if (!PLATFORM.test(text)) {
    throw new RegistryError('invalid-argument', `--platform ${JSON.stringify(text)} is not os/arch[/variant] (e.g. linux/amd64, linux/arm64/v8)`);
  }
  const [os, architecture, variant] = text.split('/') as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((part) => part !== undefined && part !== '').join('/');
}

/** linux and the architecture this process runs on, in Go's terms: images are for Linux. */
export function hostPlatform(): Platform {
  const architecture = NODE_TO_GO_ARCH[arch] ?? arch;
  if (architecture === 'arm') {
    const version = (process.config.variables as { arm_version?: string }).arm_version;
    if (version) return { os: 'linux', architecture, variant: `v${version}` };
  }
  return { os: 'linux', architecture };
}

/** Whether an image built for `candidate` serves a request for `wanted`. */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  return wanted.variant === undefined || normalVariant(wanted) === normalVariant(candidate);
}

/** The index of the first entry serving `wanted`, or -1. */
export function selectPlatform(wanted: Platform, candidates: ReadonlyArray<Platform | undefined>): number {
  return candidates.findIndex((candidate) => candidate !== undefined && platformMatches(wanted, candidate));
}

// Defaults that images and users leave out; containerd treats both spellings as one.
function normalVariant(platform: Platform): string {
  const variant = platform.variant ?? '';
  if (platform.architecture === 'arm64' && variant === '') return 'v8';
  if (platform.architecture === 'amd64' && variant === 'v1') return '';
  return variant;
}
