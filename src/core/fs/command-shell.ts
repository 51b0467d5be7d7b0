// Runs short helper programs (mount, umount) from one long-lived shell. Node cannot call
// mount(2), and spawning a program from a process of this size costs ~6 ms on a small VM before
// the program even starts (fork of a large address space): util-linux's mount took ~10 ms in
// all, against ~5 ms when a shell starts it and ~3 ms when busybox's shell runs its own applet.
// Commands run one at a time; one still running after the timeout (an umount stuck on a hung
// FUSE server, say) fails, and its shell is dropped so that later commands do not wait behind it.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { log } from '../log.ts';
import { RunError } from './run.ts';

const DEFAULT_TIMEOUT_MS = 60_000;

/** `value` as one word for sh, whatever it holds. */
function quote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

type Shell = ChildProcessByStdio<Writable, Readable, Readable>;

export interface CommandShellOptions {
  /** The shell to start; default `sh` from PATH. */
  shell?: string;
  timeoutMs?: number;
}

/** What the command running now waits for. */
interface Waiting {
  shell: Shell;
  output(): void;
  ended(why: string): void;
}

export class CommandShell {
  readonly #shellProgram: string;
  readonly #timeoutMs: number;
  #shell: Shell | null = null;
  /** Ends each command's output, with its exit status after it; unguessable by the commands. */
  #marker = '';
  #output = '';
  #waiting: Waiting | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: CommandShellOptions = {}) {
    this.#shellProgram = options.shell ?? 'sh';
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Runs `program` with `args` in `cwd` (default: this process's), after any command before it.
   * Fails with the program's own words (its stdout and stderr together) when it exits non-zero.
   */
  run(program: string, args: readonly string[], options: { cwd?: string } = {}): Promise<void> {
    const result = this.#queue.then(() => this.#runNow(program, args, options.cwd));
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Starts the shell now, if it is not running: its start (~10 ms here) then delays no command. */
  prepare(): void {
    this.#shell ??= this.#start();
  }

  /** Ends the shell and whatever it runs; a later command starts another. */
  close(): void {
    const shell = this.#shell;
    this.#shell = null;
    if (shell?.pid === undefined) return;
    try {
      process.kill(-shell.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }

  async #runNow(program: string, args: readonly string[], cwd: string | undefined): Promise<void> {
    const shell = this.#shell ?? this.#start();
    const described = `${program} ${args.join(' ')}`;
    // A subshell, so that cd stays inside it; exec spares a second fork.
    const command = [program, ...args].map(quote).join(' ');
    const line = `(${cwd === undefined ? '' : `cd ${quote(cwd)} && `}exec ${command}) </dev/null 2>&1; echo "${this.#marker} $?"\n`;
    this.#output = '';
    let status: number;
    try {
      status = await new Promise<number>((resolve, reject) => {
        // Also what keeps this process alive meanwhile: the shell's handles are not referenced.
        const timer = setTimeout(() => {
          this.close();
          reject(new Error(`${described} did not finish in ${this.#timeoutMs / 1000} s; given up`));
        }, this.#timeoutMs);
        this.#waiting = {
          shell,
          output: () => {
            const end = this.#output.indexOf(`${this.#marker} `);
            const newline = end < 0 ? -1 : this.#output.indexOf('\n', end);
            if (newline < 0) return;
            clearTimeout(timer);
            resolve(Number(this.#output.slice(end + this.#marker.length + 1, newline)));
            this.#output = this.#output.slice(0, end);
          },
          ended: (why) => {
            clearTimeout(timer);
            reject(new Error(`cannot run ${described}: ${why}`));
          },
        };
        shell.stdin.write(line);
      });
    } finally {
      this.#waiting = null;
    }
    const words = this.#output.trim();
    if (status !== 0) throw new RunError(`${described} failed (exit ${status}): ${words || 'no message'}`, words);
  }

  #start(): Shell {
    // A process group of its own, which close() ends whole.
    const shell = spawn(this.#shellProgram, [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.#marker = `command-shell-${randomBytes(12).toString('hex')}`;
    shell.stdout.setEncoding('utf8');
    shell.stdout.on('data', (chunk: string) => {
      this.#output += chunk;
      this.#waiting?.output();
    });
    shell.stderr.setEncoding('utf8');
    shell.stderr.on('data', (chunk: string) => log.warn(`${this.#shellProgram}: ${chunk.trim()}`));
    // A write to a shell that just ended; 'close' tells the command.
    shell.stdin.on('error', () => {});
    const ended = (why: string) => {
      if (this.#shell === shell) this.#shell = null;
      // Not a command of a later shell (this one was dropped for being too slow).
      if (this.#waiting?.shell === shell) this.#waiting.ended(why);
    };
    shell.on('error', (error) => ended(`${this.#shellProgram} cannot run: ${error.message}`));
    shell.on('close', (code, signal) => ended(`the shell running it (${this.#shellProgram}) ended (${signal ?? `exit ${code}`})`));
    // Between commands nothing here keeps this process alive; the shell ends with its stdin.
    shell.unref();
    for (const stream of [shell.stdin, shell.stdout, shell.stderr]) (stream as unknown as Socket).unref();
    this.#shell = shell;
    return shell;
  }
}
