// Test images built without docker (and, but for the Debian one, without network): layers are
// staged on disk as root (so owners, devices and security.* xattrs are real) and tarred with
// GNU tar, then wrapped as a docker-archive (`manifest.json`, config, `<diff id>/layer.tar`)
// that `docker load` accepts.
// Builds are cached across runs, keyed by their parameters and a fingerprint of this file.

import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, mkdtemp, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireRoot, run } from './process.ts';

const CACHE_DIR = join(tmpdir(), 'cvmfsgd-test-images');
const BUSYBOX = '/bin/busybox';
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEBIAN_SUITE = 'bookworm';
const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
/** mtime of every staged entry that does not ask for another: 2020-01-01T00:00:00Z. */
const DEFAULT_MTIME = 1577836800;

export interface ImageArchive {
  /** A docker-archive tar for `docker load -i`. */
  path: string;
  /** The RepoTag in its manifest. */
  tag: string;
}

/** The `config` of an image: what its containers start with. */
interface RunConfig {
  Env: string[];
  Cmd: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

/** cap_net_bind_service+ep as a VFS_CAP_REVISION_2 `security.capability` value. */
export const FEATURE_CAPABILITY = Buffer.from('0100000200040000000000000000000000000000', 'hex');

/** Static busybox with applet symlinks, tarred from `.` (entries `./bin/…`), for `docker import`. */
export async function busyboxRootfsTar(): Promise<string> {
  return cached('busybox-rootfs.tar', async (out, work) => {
    const stage = await Stage.create(work);
    await stageBusybox(stage);
    await stage.finish();
    await tarDirectory(stage.root, out, ['.']);
  });
}

/**
 * busybox plus three layers holding everything a graphdriver must carry through unchanged:
 * owners, special mode bits, mtimes, xattrs (user.* and security.capability), hardlinks,
 * symlinks, devices, fifos, odd and long names, AUFS whiteouts of a file and of a directory,
 * an opaque directory, a directory deleted and re-added, replaced file kinds and modified files.
 * Everything lives under /feat except the deletion of /bin/vi and the new /etc/feature-release.
 */
export async function featureImage(): Promise<ImageArchive> {
  const tag = 'cvmfsgd-test/feature:latest';
  const path = await cached('feature.tar', async (out, work) => {
    const layers = [
      await busyboxRootfsTar(),
      await layerTar(work, stageFeatures),
      await layerTar(work, stageChanges),
      await layerTar(work, stageMoreChanges),
    ];
    await writeDockerArchive(out, work, tag, layers);
  });
  return { path, tag };
}

/**
 * busybox plus layers-1 tiny layers, each adding /deep/layer-<i> and rewriting /deep/counter
 * to `<i>\n`; every tenth layer also whites out /deep/layer-<i-5>. For long lowerdir chains.
 */
export async function deepImage(layers: number): Promise<ImageArchive> {
  if (!Number.isInteger(layers) || layers < 2) throw new Error(`deepImage needs at least 2 layers, got ${layers}`);
  const tag = `cvmfsgd-test/deep:${layers}`;
  const path = await cached(`deep-${layers}.tar`, async (out, work) => {
    const tars = [await busyboxRootfsTar()];
    for (let index = 1; index < layers; index++) {
      tars.push(
        await layerTar(work, async (stage) => {
          await stage.file(`deep/layer-${index}`, `${index}\n`);
          await stage.file('deep/counter', `${index}\n`);
          if (index % 10 === 0) await stage.whiteout(`deep/layer-${index - 5}`);
        }),
      );
    }
    await writeDockerArchive(out, work, tag, tars);
  });
  return { path, tag };
}

/** busybox plus one layer of random (incompressible) files totalling megabytes MiB under /big. */
export async function bigImage(megabytes: number): Promise<ImageArchive> {
  if (!Number.isInteger(megabytes) || megabytes < 1) throw new Error(`bigImage needs whole MiB, got ${megabytes}`);
  const tag = `cvmfsgd-test/big:${megabytes}mb`;
  const path = await cached(`big-${megabytes}.tar`, async (out, work) => {
    const fileSize = 4 * 1024 * 1024;
    const chunk = Buffer.alloc(fileSize);
    const layer = await layerTar(work, async (stage) => {
      for (let left = megabytes * 1024 * 1024, index = 0; left > 0; left -= fileSize, index++) {
        const content = chunk.subarray(0, Math.min(left, fileSize));
        randomFillSync(content);
        await stage.file(`big/file-${String(index).padStart(5, '0')}`, content);
      }
    });
    await writeDockerArchive(out, work, tag, [await busyboxRootfsTar(), layer]);
  });
  return { path, tag };
}

/**
 * busybox plus three layers copied from this host's /usr (C headers; documentation and Python's
 * library; gcc's support files): about 400 MiB of real files, tens of thousands of them small,
 * for benchmarks. Its content depends on the host, so compare only runs on one machine.
 */
export function systemImage(): Promise<ImageArchive> {
  return hostImage('cvmfsgd-test/system:latest', [['/usr/include'], ['/usr/share/doc', '/usr/lib/python3.11'], ['/usr/lib/gcc']]);
}

/**
 * busybox plus one layer per list of host paths (files or directories, copied with their
 * parents and attributes; symlinks stay symlinks), for benchmark images made of real programs.
 * Files keep their mtimes, as in an image built by installing packages: Python takes a module's
 * bytecode cache for stale when the source's mtime differs from the one it was compiled from,
 * and would compile and write it again at every start.
 */
export async function hostImage(tag: string, layerSources: readonly (readonly string[])[]): Promise<ImageArchive> {
  const key = createHash('sha256').update(JSON.stringify([tag, layerSources, 'host mtimes'])).digest('hex').slice(0, 12);
  const path = await cached(`host-${key}.tar`, async (out, work) => {
    const layers = [await busyboxRootfsTar()];
    for (const sources of layerSources) {
      layers.push(
        await layerTar(work, async (stage) => {
          // Through tar rather than cp --parents: parents such as /lib are symlinks on this host.
          const relative = [...new Set(sources.map((source) => source.replace(/^\/+/, '')))];
          await run('sh', ['-c', 'tar -C / -cf - "$@" | tar -C "$0" -xpf -', stage.root, ...relative]);
        }, { ownMtimes: true }),
      );
    }
    await writeDockerArchive(out, work, tag, layers);
  });
  return { path, tag };
}

/**
 * Debian bookworm as `debootstrap --variant=minbase` installs it (essential packages and apt,
 * about 120 MB without apt's caches), as one layer: a real distribution with its package
 * database, thousands of files with the mtimes dpkg gave them, hard links and setuid programs.
 * Unlike the other images its bytes differ from build to build (install times, point releases).
 * Needs debootstrap and the Debian mirror; says which is missing rather than building less.
 */
export async function debianMinbaseImage(): Promise<ImageArchive> {
  const tag = `cvmfsgd-test/debian-minbase:${DEBIAN_SUITE}`;
  const path = await cached(`debian-minbase-${DEBIAN_SUITE}.tar`, async (out, work) => {
    if ((await run('sh', ['-c', 'command -v debootstrap'], { allowFail: true })).code !== 0) {
      throw new Error('the Debian minbase test image needs debootstrap, which is not installed (apt-get install debootstrap)');
    }
    // Asked with wget, which debootstrap downloads with, so both see the same proxy settings.
    const release = `${DEBIAN_MIRROR}/dists/${DEBIAN_SUITE}/InRelease`;
    const probe = await run('wget', ['--no-verbose', '--spider', '--tries=1', '--timeout=30', release], { allowFail: true });
    if (probe.code !== 0) {
      throw new Error(`the Debian minbase test image needs the Debian mirror, which is unreachable: ${release}: ${probe.stderr.trim()}`);
    }
    const layer = await layerTar(
      work,
      async (stage) => {
        // A system's / is 0755; the stage's 0700 would lock users other than root out of it.
        await chmod(stage.root, 0o755);
        // In a mount namespace of its own, the /proc and /sys that debootstrap mounts in the
        // target end with it even if it is killed, so removing the stage never descends into them.
        await run('unshare', ['--mount', '--propagation', 'private', 'debootstrap', '--variant=minbase', DEBIAN_SUITE, stage.root, DEBIAN_MIRROR]);
        // Downloaded packages and package lists are apt's caches, fetched again by the next
        // `apt-get update` or install (Debian's own container images ship without them too);
        // kept, they would add tens of MB to every build, push and conversion of this image.
        // The directories stay: apt's package owns them, and `dpkg --verify` would miss them.
        await run('sh', ['-c', 'rm -f "$0"/var/cache/apt/archives/*.deb && find "$0"/var/lib/apt/lists -maxdepth 1 -type f -delete', stage.root]);
      },
      { ownMtimes: true },
    );
    await writeDockerArchive(out, work, tag, [layer], {
      Env: [DEFAULT_PATH, 'LANG=C.UTF-8'],
      Cmd: ['/bin/bash'],
      WorkingDir: '/root',
      Labels: { 'org.opencontainers.image.title': `Debian ${DEBIAN_SUITE} minbase (debootstrap)` },
    });
  });
  return { path, tag };
}

async function stageBusybox(stage: Stage): Promise<void> {
  for (const dir of ['bin', 'dev', 'etc', 'home', 'proc', 'sys', 'usr', 'usr/bin', 'usr/sbin', 'sbin', 'var']) {
    await stage.dir(dir);
  }
  await stage.dir('root', { mode: 0o700 });
  await stage.dir('tmp', { mode: 0o1777 });
  await stage.dir('home/user', { uid: 1000, gid: 1000 });
  await stage.copy('bin/busybox', BUSYBOX, { mode: 0o755 });
  // `--list-full` gives each applet's install path (bin/ls, usr/bin/[, sbin/ip …).
  const applets = (await run(BUSYBOX, ['--list-full'])).stdout.split('\n').filter((line) => line.includes('/'));
  for (const applet of applets) {
    if (applet === 'bin/busybox' || applet.endsWith('/')) continue;
    const depth = applet.split('/').length - 1;
    await stage.symlink(applet, applet.startsWith('bin/') ? 'busybox' : `${'../'.repeat(depth)}bin/busybox`);
  }
  await stage.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await stage.file('etc/group', 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n');
}

/** Layer 1: the lower content every later check is about. */
async function stageFeatures(stage: Stage): Promise<void> {
  await stage.file('feat/owned', 'owned by 1000:1000\n', { mode: 0o640, uid: 1000, gid: 1000, mtime: 1500000000 });
  await stage.file('feat/setuid', '#!/bin/sh\necho setuid\n', { mode: 0o4755 });
  await stage.file('feat/setgid', '#!/bin/sh\necho setgid\n', { mode: 0o2755, gid: 50 });
  await stage.file('feat/mode-0000', 'no permissions\n', { mode: 0o000 });
  await stage.dir('feat/setgid-dir', { mode: 0o2775, gid: 100 });
  await stage.dir('feat/sticky-dir', { mode: 0o1777, uid: 1000, gid: 1000 });
  await stage.dir('feat/empty', { mode: 0o750, uid: 2, gid: 3, mtime: 1300000000 });
  await stage.file('feat/xattrs', 'has user xattrs\n', {
    xattrs: { 'user.comment': Buffer.from('hello'), 'user.binary': Buffer.from([0xff, 0xfe, 0x00, 0x10]) },
  });
  await stage.dir('feat/xattr-dir', { xattrs: { 'user.dir': Buffer.from('d') } });
  await stage.copy('feat/cap-busybox', BUSYBOX, { mode: 0o755, xattrs: { 'security.capability': FEATURE_CAPABILITY } });

  await stage.file('feat/hard/original', 'hardlinked\n', { mode: 0o604, uid: 1000 });
  await stage.hardlink('feat/hard/second', 'feat/hard/original');
  await stage.hardlink('feat/hardlink-elsewhere', 'feat/hard/original');

  await stage.symlink('feat/links/relative', '../owned');
  await stage.symlink('feat/links/absolute', '/etc/passwd');
  await stage.symlink('feat/links/dangling', '/nonexistent/target');
  await stage.symlink('feat/links/to-dir', '../hard');
  await stage.symlink('feat/links/owned', 'relative', { uid: 1000, gid: 1000, mtime: 1400000000 });

  await stage.device('feat/dev/char', 'c', 1, 3, { mode: 0o666 });
  await stage.device('feat/dev/block', 'b', 7, 0, { mode: 0o660, gid: 6 });
  // Beyond the old 8-bit major/minor: the number must survive tar and the kernel's encoding.
  await stage.device('feat/dev/big-numbers', 'c', 300, 70000, { mode: 0o600 });
  await stage.fifo('feat/dev/fifo', { mode: 0o620, uid: 1000 });

  await stage.file('feat/name with spaces ünïcødé ✓.txt', 'odd name\n');
  const longDir = `feat/long/${'d'.repeat(120)}/${'e'.repeat(120)}`;
  await stage.file(`${longDir}/${'f'.repeat(150)}`, 'path longer than 255 bytes\n');
  await stage.file(`feat/long/${'n'.repeat(110)}`, 'name longer than 100 bytes\n');
  await stage.symlink('feat/long/long-target', `${'x/'.repeat(80)}y`);
  await stage.hardlink('feat/long/hardlink-to-long', `${longDir}/${'f'.repeat(150)}`);

  await stage.file('feat/del/file', 'deleted in layer 2\n');
  await stage.file('feat/del/dir/a', 'deleted with its dir in layer 2\n');
  await stage.file('feat/del/dir/b/c', 'deleted with its dir in layer 2\n');
  await stage.file('feat/del/keep', 'kept\n');
  await stage.file('feat/opq/old1', 'hidden by the opaque dir in layer 2\n');
  await stage.file('feat/opq/olddir/old2', 'hidden by the opaque dir in layer 2\n');
  await stage.file('feat/modify/content-changes', 'v1\n');
  await stage.file('feat/modify/meta-changes', 'same\n');
  await stage.file('feat/kind/file-becomes-dir', 'a file in layer 1\n');
  await stage.file('feat/kind/dir-becomes-file/child', 'in a dir in layer 1\n');
  await stage.file('feat/dir-readded/old-a', 'deleted in layer 2, dir re-added in layer 3\n');
}

/** Layer 2: deletions, an opaque dir, modifications and kind changes on top of layer 1. */
async function stageChanges(stage: Stage): Promise<void> {
  await stage.whiteout('feat/del/file');
  await stage.whiteout('feat/del/dir');
  await stage.opaque('feat/opq');
  await stage.file('feat/opq/new1', 'new in the opaque dir\n');
  await stage.file('feat/opq/newdir/new2', 'new in the opaque dir\n');
  await stage.file('feat/modify/content-changes', 'v2, longer than v1\n', { mode: 0o600, uid: 1000 });
  await stage.file('feat/modify/meta-changes', 'same\n', { mode: 0o755, uid: 1001, gid: 1001 });
  await stage.file('feat/kind/file-becomes-dir/inside', 'a dir in layer 2\n');
  await stage.file('feat/kind/dir-becomes-file', 'a file in layer 2\n');
  await stage.whiteout('feat/dir-readded');
  await stage.file('feat/added-in-2', 'deleted again in layer 3\n');
}

/** Layer 3: deletes from the base and from layer 2, and re-adds a whited-out dir. */
async function stageMoreChanges(stage: Stage): Promise<void> {
  await stage.whiteout('bin/vi');
  await stage.whiteout('feat/added-in-2');
  await stage.file('feat/dir-readded/new-b', 're-added in layer 3\n');
  await stage.file('etc/feature-release', 'feature image\n');
}

interface Meta {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  xattrs?: Record<string, Buffer>;
}

/**
 * A directory being filled as a layer. Paths are relative to its root; missing parents are
 * created 0755 root:root. Every entry gets DEFAULT_MTIME unless it asks for another, set in
 * finish() once nothing below it changes any more.
 */
class Stage {
  readonly root: string;
  readonly #mtimes = new Map<string, number>();

  constructor(root: string) {
    this.root = root;
  }

  /** A fresh, empty stage inside work. */
  static async create(work: string): Promise<Stage> {
    return new Stage(await mkdtemp(join(work, 'stage-')));
  }

  async dir(path: string, meta: Meta = {}): Promise<void> {
    await this.#parents(path);
    await mkdir(join(this.root, path));
    await this.#apply(path, { mode: 0o755, ...meta });
  }

  async file(path: string, content: string | Buffer, meta: Meta = {}): Promise<void> {
    await this.#parents(path);
    await writeFile(join(this.root, path), content);
    await this.#apply(path, { mode: 0o644, ...meta });
  }

  async copy(path: string, source: string, meta: Meta = {}): Promise<void> {
    await this.#parents(path);
    await copyFile(source, join(this.root, path));
    await this.#apply(path, { mode: 0o644, ...meta });
  }

  async symlink(path: string, target: string, meta: Meta = {}): Promise<void> {
    await this.#parents(path);
    await symlink(target, join(this.root, path));
    await this.#apply(path, meta);
  }

  async hardlink(path: string, existing: string): Promise<void> {
    await this.#parents(path);
    await link(join(this.root, existing), join(this.root, path));
  }

  async device(path: string, kind: 'c' | 'b', major: number, minor: number, meta: Meta = {}): Promise<void> {
    await this.#parents(path);
    // Node has no mknod; coreutils does.
    await run('mknod', [join(this.root, path), kind, String(major), String(minor)]);
    await this.#apply(path, { mode: 0o644, ...meta });
  }

  async fifo(path: string, meta: Meta = {}): Promise<void> {
    await this.#parents(path);
    await run('mkfifo', [join(this.root, path)]);
    await this.#apply(path, { mode: 0o644, ...meta });
  }

  /** The AUFS whiteout Docker layers use for a deletion: an empty `.wh.<name>` beside it. */
  async whiteout(path: string): Promise<void> {
    await this.file(join(dirname(path), `.wh.${basename(path)}`), '');
  }

  /** Marks dir opaque: nothing of it from lower layers shows through. */
  async opaque(dir: string): Promise<void> {
    await this.file(join(dir, '.wh..wh..opq'), '');
  }

  /** Sets mtimes bottom-up, so creating a child never disturbs its parent's time again. */
  async finish(path = ''): Promise<void> {
    const absolute = join(this.root, path);
    if ((await lstat(absolute)).isDirectory()) {
      for (const name of await readdir(absolute)) await this.finish(join(path, name));
    }
    const mtime = this.#mtimes.get(path) ?? DEFAULT_MTIME;
    await lutimes(absolute, mtime, mtime);
  }

  async #parents(path: string): Promise<void> {
    const parent = dirname(path);
    if (parent === '.' || existsSync(join(this.root, parent))) return;
    await this.dir(parent);
  }

  async #apply(path: string, meta: Meta): Promise<void> {
    const absolute = join(this.root, path);
    // Order matters: chown clears setuid/setgid and security.capability, chmod does not.
    await lchown(absolute, meta.uid ?? 0, meta.gid ?? 0);
    if (meta.mode !== undefined) await chmod(absolute, meta.mode);
    for (const [name, value] of Object.entries(meta.xattrs ?? {})) {
      // Node has no setxattr; setfattr from the attr package takes binary values as hex.
      await run('setfattr', ['--no-dereference', '-n', name, '-v', `0x${value.toString('hex')}`, absolute]);
    }
    if (meta.mtime !== undefined) this.#mtimes.set(path, meta.mtime);
  }
}

/**
 * Stages one layer and tars it (into work) the way Docker does: entries without a `./` prefix.
 * ownMtimes: fill made its entries with the times they should keep (a system a package manager
 * installed), which finish() would otherwise flatten to DEFAULT_MTIME.
 */
async function layerTar(work: string, fill: (stage: Stage) => Promise<void>, { ownMtimes = false } = {}): Promise<string> {
  const stage = await Stage.create(work);
  await fill(stage);
  if (!ownMtimes) await stage.finish();
  const out = `${stage.root}.tar`;
  await tarDirectory(stage.root, out, (await readdir(stage.root)).sort(compareBytes));
  // Big images would otherwise hold every byte twice until the build ends.
  await rm(stage.root, { recursive: true });
  return out;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function tarDirectory(root: string, out: string, entries: readonly string[]): Promise<void> {
  await run('tar', [
    '--create',
    `--file=${out}`,
    `--directory=${root}`,
    // pax carries xattrs, long names and big device numbers; fixed extended-header names and
    // no atime/ctime keep the bytes, and so the diff ids, the same from build to build.
    '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    '--sort=name',
    '--numeric-owner',
    '--xattrs',
    '--xattrs-include=*',
    '--',
    ...entries,
  ]);
}

/**
 * Wraps layer tars as a docker-archive. Layers built in work are moved in; others (the cached
 * busybox rootfs) are copied.
 */
async function writeDockerArchive(
  out: string,
  work: string,
  tag: string,
  layers: readonly string[],
  runConfig: RunConfig = { Env: [DEFAULT_PATH], Cmd: ['sh'] },
): Promise<void> {
  const dir = await mkdtemp(join(work, 'archive-'));
  const diffIds: string[] = [];
  const layerPaths: string[] = [];
  for (const layer of layers) {
    const digest = await sha256File(layer);
    const inArchive = `${digest}/layer.tar`;
    diffIds.push(`sha256:${digest}`);
    layerPaths.push(inArchive);
    if (existsSync(join(dir, inArchive))) continue;
    await mkdir(join(dir, digest));
    await (dirname(layer) === work ? rename : copyFile)(layer, join(dir, inArchive));
  }
  const created = new Date(DEFAULT_MTIME * 1000).toISOString();
  const config = JSON.stringify({
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    created,
    config: runConfig,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map(() => ({ created, created_by: 'cvmfs-graphdriver test image builder' })),
  });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  await writeFile(join(dir, configName), config);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: layerPaths }]));
  await run('tar', ['--create', `--file=${out}`, `--directory=${dir}`, '--', 'manifest.json', configName, ...new Set(layerPaths)]);
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

let fingerprint: string | undefined;

/** Changes when this builder or the host's busybox does, so stale cached images are not reused. */
function buildFingerprint(): string {
  if (fingerprint === undefined) {
    const busybox = statSync(BUSYBOX);
    fingerprint = createHash('sha256')
      .update(readFileSync(fileURLToPath(import.meta.url)))
      .update(`${busybox.size}:${busybox.mtimeMs}`)
      .digest('hex')
      .slice(0, 12);
  }
  return fingerprint;
}

/**
 * Returns CACHE_DIR/<fingerprint>/<name>, building it first when absent. The build writes
 * `out` with scratch space in `work`; both go away whatever happens, and the result appears
 * under its name only once complete.
 */
async function cached(name: string, build: (out: string, work: string) => Promise<void>): Promise<string> {
  const path = join(CACHE_DIR, buildFingerprint(), name);
  if (existsSync(path)) return path;
  requireRoot('building test images');
  await mkdir(dirname(path), { recursive: true });
  const work = await mkdtemp(join(CACHE_DIR, 'work-'));
  const partial = `${path}.partial-${process.pid}`;
  try {
    await build(partial, work);
    await rename(partial, path);
  } finally {
    await rm(partial, { force: true });
    await rm(work, { recursive: true, force: true });
  }
  return path;
}
