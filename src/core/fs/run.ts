import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

export interface RunOptions {
  cwd?: string;
  input?: string | Buffer;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/** A helper that exited non-zero; `stderr` holds its own words for callers that sort its failures. */
export class RunError extends Error {
  readonly stderr: string;

  constructor(message: string, stderr: string) {
    super(message);
    this.stderr = stderr;
  }
}

/** Runs a helper program (mount, mknod, setfattr …) and fails with its own words when it fails. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
    child.on('close', (code, signal) => {
      const errText = Buffer.concat(stderr).toString('utf8').trim();
      if (code === 0) resolve({ stdout: Buffer.concat(stdout), stderr: errText });
      else reject(new RunError(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${errText || 'no message'}`, errText));
    });
    child.stdin.on('error', () => {}); // a helper that exits early closes its stdin; its exit code tells the story
    child.stdin.end(options.input ?? '');
  });
}

/** Where `program` is found on PATH, as a shell would run it; undefined when it is not installed. */
export function findOnPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    const candidate = path.join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not in this directory, or not executable there: the shell would look further too.
    }
  }
  return undefined;
}
