// A real nginx for tests: serves repository directories at /cvmfs/<fqrn>/ on loopback (or another
// place) and a random free port, with everything (config, pid, logs, temp dirs) in its own temp prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, type ServerPlace } from './process.ts';

export const NGINX_BINARY = '/usr/sbin/nginx';

export interface AccessLogEntry {
  method: string;
  /** Request target as sent, e.g. /cvmfs/repo.example/data/ab/cdef… */
  path: string;
  status: number;
  bytesSent: number;
}

export interface NginxServer {
  readonly port: number;
  /** http://<address>:<port> */
  readonly baseUrl: string;
  /** http://<address>:<port>/cvmfs/<fqrn> */
  repositoryUrl(fqrn: string): string;
  /** Requests served so far, oldest first. */
  accessLog(): Promise<AccessLogEntry[]>;
  /** Kills nginx by its PID and removes its temp prefix. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts nginx serving each `repositories[fqrn]` directory at /cvmfs/<fqrn>/, by default on loopback. */
export async function startNginx(repositories: Readonly<Record<string, string>>, place: ServerPlace = LOOPBACK): Promise<NginxServer> {
  // A free port can be taken between probing and nginx binding it; try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const prefix = await mkdtemp(join(tmpdir(), 'nginx-test-'));
    try {
      return await launch(prefix, place, await freePort(), repositories);
    } catch (error) {
      lastError = error;
      await rm(prefix, { recursive: true, force: true });
    }
  }
  throw lastError;
}

async function launch(prefix: string, place: ServerPlace, port: number, repositories: Readonly<Record<string, string>>): Promise<NginxServer> {
  const accessLogPath = join(prefix, 'access.log');
  const errorLogPath = join(prefix, 'error.log');
  const locations = Object.entries(repositories)
    .map(([fqrn, directory]) => `    location /cvmfs/${fqrn}/ { alias ${quote(`${directory}/`)}; }`)
    .join('\n');
  // As root, nginx workers would drop to "nobody", which cannot read 0700 temp directories.
  const user = process.getuid?.() === 0 ? 'user root root;' : '';
  const config = `
daemon off;
master_process on;
worker_processes 1;
${user}
pid ${quote(join(prefix, 'nginx.pid'))};
error_log ${quote(errorLogPath)} warn;
events { worker_connections 128; }
http {
  default_type application/octet-stream;
  log_format tests '$request_method $request_uri $status $body_bytes_sent';
  access_log ${quote(accessLogPath)} tests;
  client_body_temp_path ${quote(join(prefix, 'body'))};
  proxy_temp_path ${quote(join(prefix, 'proxy'))};
  fastcgi_temp_path ${quote(join(prefix, 'fastcgi'))};
  uwsgi_temp_path ${quote(join(prefix, 'uwsgi'))};
  scgi_temp_path ${quote(join(prefix, 'scgi'))};
  server {
    listen ${place.address}:${port};
${locations}
  }
}
`;
  const configPath = join(prefix, 'nginx.conf');
  await writeFile(configPath, config);
  await writeFile(accessLogPath, '');
  const child = spawn(...place.command(NGINX_BINARY, ['-p', prefix, '-c', configPath, '-e', errorLogPath]), { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitUntilListening(place.address, port, child, exited);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    const log = await readFile(errorLogPath, 'utf8').catch(() => '');
    throw new Error(`nginx did not start: ${(error as Error).message}\n${log}`);
  }

  let stopped = false;
  const baseUrl = `http://${place.address}:${port}`;
  return {
    port,
    baseUrl,
    repositoryUrl: (fqrn) => `${baseUrl}/cvmfs/${fqrn}`,
    async accessLog() {
      const text = await readFile(accessLogPath, 'utf8');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => {
          const [method, path, status, bytesSent] = line.split(' ');
          return { method: method!, path: path!, status: Number(status), bytesSent: Number(bytesSent) };
        });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        await exited;
      }
      await rm(prefix, { recursive: true, force: true });
    },
  };
}

function quote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntilListening(address: string, port: number, child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + 10_000;
  let done = false;
  void exited.then(() => (done = true));
  while (Date.now() < deadline) {
    if (done) throw new Error(`nginx exited with code ${child.exitCode}`);
    if (await canConnect(address, port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`nothing listens on port ${port} after 10 s`);
}

function canConnect(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
