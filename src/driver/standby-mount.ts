import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { processEnded, type MountProcess } from './mount-process.ts';

// Starting this program costs a repository mount ~0.25 s before it does anything (Node's own
// start-up and loading the bundle), and a container's first start waits for that mount. So the
// embedded client keeps one `cvmfs-graphdriver standby-mount` process started and loaded ahead of
// need; a mount hands it its arguments on stdin, one JSON line, and it goes on as
// `cvmfs-graphdriver mount` would. Its stdin is the driver's pipe: if the driver goes away before
// handing it a mount, the standby reads end-of-file and exits. It takes its order and closes
// stdin, so once it serves a mount it outlives the driver like any other mount process.

/** What a standby process is told to do: mount with these arguments, logging to this file. */
export interface MountOrder {
  /** The arguments of `cvmfs-graphdriver mount`. */
  args: string[];
  logFile: string;
}

const MAX_ORDER_BYTES = 64 * 1024;

/** The one order a standby process gets, or null when its driver closed the pipe without one. */
export async function readMountOrder(input: Readable): Promise<MountOrder | null> {
  let text = '';
  for await (const chunk of input) {
    text += String(chunk);
    if (text.includes('\n') || text.length > MAX_ORDER_BYTES) break;
  }
  input.destroy();
  const line = text.split('\n', 1)[0]!.trim();
  if (line === '') return null;
  let order: Partial<MountOrder>;
  try {
    order = JSON.parse(line) as Partial<MountOrder>;
  } catch {
    order = {};
  }
  if (!Array.isArray(order.args) || !order.args.every((arg) => typeof arg === 'string') || typeof order.logFile !== 'string') {
    throw new Error(`standby-mount: an order is {"args": [...], "logFile": "..."}, not ${line.slice(0, 200)}`);
  }
  return { args: order.args, logFile: order.logFile };
}

export interface StandbyMount {
  readonly pid: number | undefined;
  /** Hands `order` to the process: it becomes that mount's process. Null if the standby has ended. */
  take(order: MountOrder): MountProcess | null;
}

/**
 * Starts `command ...args standby-mount` detached, like a mount process, with its own output in
 * `<logDir>/standby.log` until it takes an order.
 */
export function startStandbyMount(command: string, args: readonly string[], logDir: string): StandbyMount {
  fs.mkdirSync(logDir, { recursive: true });
  const out = fs.openSync(path.join(logDir, 'standby.log'), 'a');
  const child = spawn(command, [...args, 'standby-mount'], { detached: true, stdio: ['pipe', out, out] });
  fs.closeSync(out);
  let ended = false;
  const exited = processEnded(child);
  void exited.then(() => (ended = true));
  const stdin = child.stdin as Socket;
  // A standby that failed to start has closed its end.
  stdin.on('error', () => {});
  stdin.unref();
  child.unref();
  let taken = false;
  return {
    pid: child.pid,
    take(order) {
      if (ended || taken) return null;
      taken = true;
      stdin.end(`${JSON.stringify(order)}\n`);
      return { logFile: order.logFile, ended: exited, kill: () => child.kill() };
    },
  };
}
