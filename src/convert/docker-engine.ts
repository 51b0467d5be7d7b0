import http from 'node:http';

// The local Docker daemon's Engine API, reached like the docker CLI does: DOCKER_HOST
// (unix:// or tcp://) or /var/run/docker.sock.

interface EngineTarget {
  socketPath?: string;
  host?: string;
  port?: number;
  label: string;
}

function engineTarget(env: NodeJS.ProcessEnv): EngineTarget {
  const host = env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length), label: host };
  const tcp = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(host);
  if (tcp) return { host: tcp[1], port: Number(tcp[2]), label: host };
  throw new Error(`DOCKER_HOST=${host} is not supported here; use unix:///path/to/docker.sock or tcp://host:port`);
}

/** Loads a docker-archive into the daemon (POST /images/load) and returns what it said. */
export async function loadIntoDocker(archive: Buffer, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const target = engineTarget(env);
  const body = await new Promise<string>((resolve, reject) => {
    const request = http.request(
      { ...target, method: 'POST', path: '/images/load?quiet=1', headers: { 'Content-Type': 'application/x-tar', 'Content-Length': archive.length } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (response.statusCode !== 200) reject(new Error(`the Docker daemon at ${target.label} refused the image (HTTP ${response.statusCode}): ${text.trim()}`));
          else resolve(text);
        });
      },
    );
    request.on('error', (err) => reject(new Error(`cannot reach the Docker daemon at ${target.label}: ${err.message} (is dockerd running? set DOCKER_HOST, or use --output-file or --push)`)));
    request.end(archive);
  });
  // The reply is a stream of JSON messages; an "error" in any of them means the load failed.
  const messages = body.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as { stream?: string; error?: string });
  const failure = messages.find((message) => message.error);
  if (failure) throw new Error(`the Docker daemon at ${target.label} could not load the image: ${failure.error}`);
  return messages.map((message) => message.stream ?? '').join('').trim();
}
