// A private dockerd per test (own data-root, exec-root, socket) and the legacy graphdriver plugin
// it talks to. See shared/docs/dockerd-e2e-observations.md §1, §7 and §8 for the behaviour this
// relies on.

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  kill,
  pollUntil,
  requireRoot,
  run,
  spawnLogged,
  tailFile,
  terminate,
  waitUntilReady,
  type RunResult,
} from './process.ts';

const DOCKERD = '/usr/sbin/dockerd';
// /usr/local/bin/docker may be a newer client; the tests speak to a 20.10 daemon with its own CLI.
const DOCKER_CLI = '/usr/bin/docker';
// dockerd hardcodes legacy plugin discovery here, shared by every daemon on the host (§7.9).
const PLUGIN_SOCKET_DIR = '/run/docker/plugins';
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE = join(REPO_ROOT, 'node_modules/.bin/node');
const MAIN = join(REPO_ROOT, 'src/main.ts');

export interface DockerdOptions {
  storageDriver: string;
  storageOpts?: string[];
  /** Reuse a data-root (e.g. across daemons); it is then unmounted but not deleted on stop. */
  dataRoot?: string;
  debug?: boolean;
  /** Registries (host:port) dockerd may pull from over plain HTTP, like test registries. */
  insecureRegistries?: string[];
}

export interface DockerOptions {
  input?: Buffer | string;
  allowFail?: boolean;
}

export interface Dockerd {
  /** Temp dir holding config, sockets, exec-root, log and (by default) the data-root. */
  readonly dir: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  /** The DOCKER_HOST value, `unix://…`. */
  readonly host: string;
  readonly logPath: string;
  /** Runs /usr/bin/docker against this daemon; throws with stderr and the daemon log tail on failure. */
  docker(args: readonly string[], options?: DockerOptions): Promise<RunResult>;
  /** Stops the daemon (keeping all state) and starts it again on the same config. */
  restart(): Promise<void>;
  /** Stops the daemon, unmounts everything left under its dirs, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  logTail(lines?: number): string;
}

/** Fails with one clear message listing what this host lacks to run the dockerd tests. */
function requireDockerHost(needs: { overlay: boolean }): void {
  requireRoot('driving dockerd');
  const missing = [DOCKERD, DOCKER_CLI, '/usr/bin/containerd', '/usr/sbin/runc'].filter((p) => !existsSync(p));
  if (needs.overlay && !/\toverlay\n/.test(readFileSync('/proc/filesystems', 'utf8'))) {
    missing.push('overlay filesystem in the kernel (modprobe overlay)');
  }
  if (missing.length > 0) throw new Error(`this host cannot run the dockerd tests; missing: ${missing.join(', ')}`);
}

/**
 * Starts a private dockerd and waits until it answers. Register it with stopAfter(t, …) so it
 * is stopped and cleaned up whatever the test's outcome; a failed start cleans up by itself.
 */
export async function startDockerd(options: DockerdOptions): Promise<Dockerd> {
  requireDockerHost({ overlay: options.storageDriver === 'overlay2' });
  // Under /tmp rather than $TMPDIR: unix socket paths must stay below 108 bytes.
  const dir = await mkdtemp('/tmp/gd-');
  const daemon = new DockerdProcess(dir, options);
  try {
    await daemon.writeConfig();
    await daemon.start();
  } catch (error) {
    const log = daemon.logTail();
    await daemon.stop();
    throw new Error(`${(error as Error).message}\n--- dockerd log tail ---\n${log}`, { cause: error });
  }
  return daemon;
}

class DockerdProcess implements Dockerd {
  readonly dir: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly host: string;
  readonly logPath: string;
  readonly #ownsDataRoot: boolean;
  readonly #configPath: string;
  readonly #options: DockerdOptions;
  readonly #env: NodeJS.ProcessEnv;
  #child: ChildProcess | undefined;
  #stopped = false;

  constructor(dir: string, options: DockerdOptions) {
    this.dir = dir;
    this.#options = options;
    this.#ownsDataRoot = options.dataRoot === undefined;
    this.dataRoot = options.dataRoot === undefined ? join(dir, 'root') : resolve(options.dataRoot);
    this.execRoot = join(dir, 'exec');
    this.host = `unix://${join(dir, 'docker.sock')}`;
    this.logPath = join(dir, 'dockerd.log');
    this.#configPath = join(dir, 'daemon.json');
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: this.host, DOCKER_CONFIG: join(dir, 'cli') };
    // Anything that could point the CLI at another daemon or API version goes.
    for (const name of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION']) {
      delete env[name];
    }
    this.#env = env;
  }

  async writeConfig(): Promise<void> {
    await mkdir(join(this.dir, 'cli'));
    const config = {
      experimental: true,
      'data-root': this.dataRoot,
      'exec-root': this.execRoot,
      pidfile: join(this.dir, 'dockerd.pid'),
      hosts: [this.host],
      // Leave the host's firewall and bridges alone; containers run with --network none.
      iptables: false,
      ip6tables: false,
      bridge: 'none',
      'storage-driver': this.#options.storageDriver,
      'storage-opts': this.#options.storageOpts ?? [],
      'insecure-registries': this.#options.insecureRegistries ?? [],
      debug: this.#options.debug ?? false,
      // Otherwise the daemon creates /etc/docker/key.json on the host.
      'deprecated-key-path': join(this.dir, 'key.json'),
    };
    await writeFile(this.#configPath, JSON.stringify(config, null, 2));
  }

  async start(): Promise<void> {
    const child = spawnLogged(DOCKERD, ['--config-file', this.#configPath], this.logPath);
    this.#child = child;
    // An absent plugin takes dockerd ~16 s to give up on (§6), so allow well beyond that.
    await waitUntilReady(
      child,
      async () => (await this.docker(['version', '--format', '{{.Server.Version}}'], { allowFail: true })).code === 0,
      60_000,
      `dockerd in ${this.dir}`,
    );
  }

  async docker(args: readonly string[], options: DockerOptions = {}): Promise<RunResult> {
    const result = await run(DOCKER_CLI, args, { env: this.#env, input: options.input, allowFail: true });
    if (result.code !== 0 && !options.allowFail) {
      throw new Error(
        `docker ${args.join(' ')} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}\n` +
          `--- dockerd log tail ---\n${this.logTail(20)}`,
      );
    }
    return result;
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error(`dockerd in ${this.dir} was stopped and its state removed; it cannot restart`);
    await this.#stopDaemon();
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#stopDaemon();
    const roots = this.#ownsDataRoot ? [this.dir] : [this.dir, this.dataRoot];
    await unmountAllUnder(roots);
    // fs.rm crosses mount points, so never delete while anything is still mounted below.
    const left = mountPointsUnder(roots);
    if (left.length > 0) throw new Error(`still mounted after dockerd stopped, not deleting ${this.dir}: ${left.join(', ')}`);
    await rm(this.dir, { recursive: true, force: true });
  }

  logTail(lines = 40): string {
    return tailFile(this.logPath, lines);
  }

  async #stopDaemon(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    // dockerd gives running containers 15 s to stop, then sends the driver Cleanup.
    if (!(await terminate(child, 45_000))) await this.#killOrphanedContainerd();
  }

  /** A SIGKILLed dockerd leaves its supervised containerd running; its pidfile names it. */
  async #killOrphanedContainerd(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.execRoot, 'containerd/containerd.pid'), 'utf8').trim());
      // Guard against a recycled PID before signalling.
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('containerd')) return;
    } catch {
      return;
    }
    process.kill(pid, 'SIGTERM');
    await pollUntil(async () => !existsSync(`/proc/${pid}`), 20_000, () => `containerd ${pid} did not exit`);
  }
}

/** Mount points at or below any of roots, deepest first (so overlays go before the data-root bind). */
function mountPointsUnder(roots: readonly string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    .map((line) => line.split(' ')[4].replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => roots.some((root) => point === root || point.startsWith(`${root}/`)));
  return points.reverse().sort((a, b) => b.split('/').length - a.split('/').length);
}

async function unmountAllUnder(roots: readonly string[]): Promise<void> {
  // Mounts can be stacked on one point; a few rounds take them all off.
  for (let round = 0; round < 5; round++) {
    const points = mountPointsUnder(roots);
    if (points.length === 0) return;
    for (const point of points) {
      const { code } = await run('umount', [point], { allowFail: true });
      // Busy (a leaked process still inside): detach it so the temp dir can still go.
      if (code !== 0) await run('umount', ['--lazy', point], { allowFail: true });
    }
  }
}

export interface LegacyPluginOptions {
  /** Also the storage-driver name dockerd is started with; use uniquePluginName(). */
  name: string;
  debug?: boolean;
  extraArgs?: string[];
  /** Where the driver keeps dockerd's Init; default: inside the plugin's own temp dir. */
  stateFile?: string;
  /** Run this executable (e.g. dist/cvmfs-graphdriver) instead of src/main.ts under Node. */
  executable?: string;
}

export interface PluginProcess {
  readonly name: string;
  readonly socket: string;
  readonly pid: number;
  readonly logPath: string;
  /** SIGTERM by PID, wait (SIGKILL after 15 s), remove the socket and the log dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL by PID and wait: a crash. The socket file stays, as it would. */
  kill(): Promise<void>;
  logTail(lines?: number): string;
}

/** Plugin names share /run/docker/plugins with every daemon on the host, so make them unique. */
export function uniquePluginName(): string {
  return `cvmfsgd-${randomBytes(4).toString('hex')}`;
}

/**
 * Starts the driver as a legacy (v1) plugin and waits until its socket accepts connections.
 * Start it before the dockerd that uses it, and register both with the same stopAfter hook so
 * dockerd stops first.
 */
export async function startLegacyPlugin(options: LegacyPluginOptions): Promise<PluginProcess> {
  requireRoot('the graphdriver plugin');
  const socket = join(PLUGIN_SOCKET_DIR, `${options.name}.sock`);
  await mkdir(PLUGIN_SOCKET_DIR, { recursive: true });
  if (await acceptsConnections(socket)) throw new Error(`${socket} is already served by another process`);
  const dir = await mkdtemp('/tmp/gdp-');
  const logPath = join(dir, 'plugin.log');
  const stateFile = options.stateFile ?? join(dir, 'init.json');
  const args = ['serve-driver', '--socket', socket, '--state', stateFile, ...(options.debug ? ['--debug'] : []), ...(options.extraArgs ?? [])];
  const child = options.executable ? spawnLogged(options.executable, args, logPath, REPO_ROOT) : spawnLogged(NODE, [MAIN, ...args], logPath, REPO_ROOT);
  const plugin = new LegacyPlugin(options.name, socket, dir, logPath, child);
  try {
    await waitUntilReady(child, () => acceptsConnections(socket), 15_000, `plugin on ${socket}`);
  } catch (error) {
    const log = plugin.logTail();
    await plugin.stop();
    throw new Error(`${(error as Error).message}\n--- plugin log tail ---\n${log}`, { cause: error });
  }
  return plugin;
}

class LegacyPlugin implements PluginProcess {
  readonly name: string;
  readonly socket: string;
  readonly pid: number;
  readonly logPath: string;
  readonly #dir: string;
  readonly #child: ChildProcess;

  constructor(name: string, socket: string, dir: string, logPath: string, child: ChildProcess) {
    this.name = name;
    this.socket = socket;
    this.pid = child.pid ?? -1;
    this.logPath = logPath;
    this.#dir = dir;
    this.#child = child;
  }

  async stop(): Promise<void> {
    await terminate(this.#child, 15_000);
    await rm(this.socket, { force: true });
    await rm(this.#dir, { recursive: true, force: true });
  }

  async kill(): Promise<void> {
    await kill(this.#child);
  }

  logTail(lines = 40): string {
    return tailFile(this.logPath, lines);
  }
}

function acceptsConnections(socket: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const connection = connect(socket);
    connection.once('connect', () => {
      connection.destroy();
      resolvePromise(true);
    });
    connection.once('error', () => resolvePromise(false));
  });
}
