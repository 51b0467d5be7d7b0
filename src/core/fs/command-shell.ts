// Runs short helper programs (mount, umount) from one long-lived shell. Node cannot call
// mount(2), and spawning a program from a process of this size costs ~6 ms on a small VM before
// the program even starts (fork of a large address space): util-linux's mount took ~10 ms in
// all, against ~5 ms when a shell starts it and ~3 ms when busybox's shell runs its own applet.
// The helper need not be a shell: a dialect says how to start it and how to write a command to
// it (mount-syscalls.ts has Perl make the system calls themselves, with no program to start).
// Commands run one at a time; one still running after the timeout (an umount stuck on a hung
// FUSE server, say) fails, and its helper is dropped so that later commands do not wait behind it.
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

/** How a helper that runs commands sent to it line by line is started and spoken to. */
export interface CommandDialect {
  /** The program to start and its arguments; `marker` must end each command's output, followed by a space, the status and a newline. */
  start(marker: string): { program: string; args: string[]; env?: NodeJS.ProcessEnv };
  /** The line that runs `program` with `args` in `cwd` (undefined: this process's). */
  line(program: string, args: readonly string[], cwd: string | undefined, marker: string): string;
  /** What a non-zero status is, as a failure names it: `exit` for a program's exit status, `errno` for a system call's error. */
  statusName: string;
  /** The command as a failure names it; default: the program and its arguments. */
  describe?(program: string, args: readonly string[]): string;
}

/** A POSIX shell (default `sh` from PATH) running programs. */
export function shDialect(shell = 'sh'): CommandDialect {
  return {
    start: () => ({ program: shell, args: [] }),
    // A subshell, so that cd stays inside it; exec spares a second fork.
    line: (program, args, cwd, marker) => {
      const command = [program, ...args].map(quote).join(' ');
      return `(${cwd === undefined ? '' : `cd ${quote(cwd)} && `}exec ${command}) </dev/null 2>&1; echo "${marker} $?"\n`;
    },
    statusName: 'exit',
  };
}

type Shell = ChildProcessByStdio<Writable, Readable, Readable>;

export interface CommandShellOptions {
  /** Default: sh from PATH. */
  dialect?: CommandDialect;
  timeoutMs?: number;
}

/** What the command running now waits for. */
interface Waiting {
  shell: Shell;
  output(): void;
  ended(why: string): void;
}

export class CommandShell {
  readonly #dialect: CommandDialect;
  readonly #timeoutMs: number;
  #shell: Shell | null = null;
  /** Ends each command's output, with its exit status after it; unguessable by the commands. */
  #marker = '';
  #output = '';
  #waiting: Waiting | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: CommandShellOptions = {}) {
    this.#dialect = options.dialect ?? shDialect();
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
    const described = this.#dialect.describe?.(program, args) ?? `${program} ${args.join(' ')}`;
    const line = this.#dialect.line(program, args, cwd, this.#marker);
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
    if (status !== 0) throw new RunError(`${described} failed (${this.#dialect.statusName} ${status}): ${words || 'no message'}`, words);
  }

  #start(): Shell {
    this.#marker = `command-shell-${randomBytes(12).toString('hex')}`;
    const { program, args, env } = this.#dialect.start(this.#marker);
    // A process group of its own, which close() ends whole.
    const shell = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env });
    shell.stdout.setEncoding('utf8');
    shell.stdout.on('data', (chunk: string) => {
      this.#output += chunk;
      this.#waiting?.output();
    });
    shell.stderr.setEncoding('utf8');
    shell.stderr.on('data', (chunk: string) => log.warn(`${program}: ${chunk.trim()}`));
    // A write to a shell that just ended; 'close' tells the command.
    shell.stdin.on('error', () => {});
    const ended = (why: string) => {
      if (this.#shell === shell) this.#shell = null;
      // Not a command of a later shell (this one was dropped for being too slow).
      if (this.#waiting?.shell === shell) this.#waiting.ended(why);
    };
    shell.on('error', (error) => ended(`${program} cannot run: ${error.message}`));
    shell.on('close', (code, signal) => ended(`the helper running it (${program}) ended (${signal ?? `exit ${code}`})`));
    // Between commands nothing here keeps this process alive; the shell ends with its stdin.
    shell.unref();
    for (const stream of [shell.stdin, shell.stdout, shell.stderr]) (stream as unknown as Socket).unref();
    this.#shell = shell;
    return shell;
  }
}
