// Child processes for the integration tests: one-shot commands, long-lived daemons that must be
// stopped by PID, and the hook that guarantees they are stopped even when a test fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. */
  input?: Buffer | string;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command to completion; throws with its stderr when it exits non-zero (unless allowFail). */
export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  // A command may exit without reading all its input; that EPIPE is not the failure to report.
  child.stdin.on('error', () => {});
  child.stdin.end(options.input);
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    // Shell convention for a death by signal, so callers see one number either way.
    child.on('close', (exitCode, signal) => resolve(exitCode ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
  const result = { stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString(), code };
  if (code !== 0 && !options.allowFail) {
    throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Starts a long-lived process with stdout and stderr appended to logPath. */
/** Where a test server runs: this host's loopback, or elsewhere (another network namespace). */
export interface ServerPlace {
  /** The address the server listens on, and that clients connect to. */
  readonly address: string;
  /** The command line that runs `command args` there. */
  command(command: string, args: readonly string[]): [string, string[]];
}

export const LOOPBACK: ServerPlace = { address: '127.0.0.1', command: (command, args) => [command, [...args]] };

export function spawnLogged(command: string, args: readonly string[], logPath: string, cwd?: string): ChildProcess {
  const log = openSync(logPath, 'a');
  try {
    const child = spawn(command, args, { cwd, stdio: ['ignore', log, log] });
    // Without a listener a failed spawn would crash the test process; waitUntilReady reports it.
    child.on('error', () => {});
    return child;
  } finally {
    closeSync(log);
  }
}

/**
 * Polls ready() until it is true. Fails fast when the process dies or could not be spawned,
 * and after timeoutMs otherwise.
 */
export async function waitUntilReady(
  child: ChildProcess,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  await pollUntil(
    async () => {
      if (spawnError) throw new Error(`${what}: could not start: ${spawnError.message}`);
      if (hasExited(child)) throw new Error(`${what}: exited during start-up (${child.exitCode ?? child.signalCode})`);
      return ready();
    },
    timeoutMs,
    () => `${what}: not ready`,
  );
}

/** Resolves true once the child has exited, false if it is still running after timeoutMs. */
async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (hasExited(child)) return true;
  const exited = new Promise<true>((resolve) => child.once('exit', () => resolve(true)));
  const timedOut = sleep(timeoutMs, false as const, { ref: false });
  return Promise.race([exited, timedOut]);
}

/**
 * SIGTERM by PID and wait; SIGKILL if it outlives graceMs. Returns false when SIGKILL was
 * needed, so callers can clean up what a graceful exit would have.
 */
export async function terminate(child: ChildProcess, graceMs: number): Promise<boolean> {
  if (hasExited(child) || child.pid === undefined) return true;
  process.kill(child.pid, 'SIGTERM');
  if (await waitForExit(child, graceMs)) return true;
  await kill(child);
  return false;
}

/** SIGKILL by PID and wait for the exit. */
export async function kill(child: ChildProcess): Promise<void> {
  if (hasExited(child) || child.pid === undefined) return;
  process.kill(child.pid, 'SIGKILL');
  await waitForExit(child, 10_000);
}

/** Polls until check() is true; throws describe() when timeoutMs passes or check throws. */
export async function pollUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(200);
  }
}

/** The last lines of a (possibly large, possibly missing) log file. */
export function tailFile(path: string, lines = 40): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return `(no log at ${path})`;
  }
  try {
    // Debug logs of dockerd reach megabytes; the tail is all anyone reads.
    const size = fstatSync(fd).size;
    const length = Math.min(size, 256 * 1024);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString().split('\n').slice(-lines - 1).join('\n');
  } finally {
    closeSync(fd);
  }
}

export function requireRoot(purpose: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${purpose} needs root (mounts, mknod, chown, security.* xattrs); run the tests as root`);
  }
}

export interface Stoppable {
  stop(): Promise<void>;
}

/** The part of a node:test context (TestContext, or `{ after }` from node:test) that stopAfter uses. */
export interface AfterHook {
  after(fn: () => Promise<void>): void;
}

const stacksByHook = new WeakMap<AfterHook, Stoppable[]>();

/**
 * Stops the resource when the test (or suite) ends, pass or fail. Resources registered on the
 * same hook stop in reverse order, like `defer`: node:test runs after-hooks first-in-first-out,
 * but dockerd must stop before the plugin it talks to (otherwise its shutdown Cleanup call
 * retries an absent socket for ~15 s).
 */
export function stopAfter<T extends Stoppable>(hook: AfterHook, resource: T): T {
  let stack = stacksByHook.get(hook);
  if (!stack) {
    const resources: Stoppable[] = [];
    stack = resources;
    stacksByHook.set(hook, resources);
    hook.after(async () => {
      const failures: unknown[] = [];
      for (const item of resources.splice(0).reverse()) {
        try {
          await item.stop();
        } catch (error) {
          failures.push(error);
        }
      }
      if (failures.length > 0) throw new AggregateError(failures, 'cleanup after the test failed');
    });
  }
  stack.push(resource);
  return resource;
}

/** Every process on the host with its command line (a process gone meanwhile has none). */
export async function processCommandLines(): Promise<{ pid: number; argv: string[] }[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const lines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  // Each argument ends in a NUL.
  return pids.map((pid, index) => ({ pid: Number(pid), argv: lines[index]!.split('\0').slice(0, -1) }));
}
