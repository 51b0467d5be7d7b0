// `npm run demo`: the driver on a fresh machine, end to end. Starts the built executable as a
// legacy graphdriver plugin and a private dockerd on it, loads a multi-layer sample image,
// runs it, changes a container and commits it, and prints what happened at each step.
// Everything it starts is stopped and removed at the end.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd } from './helpers/dockerd.ts';
import { featureImage } from './helpers/images.ts';

const EXECUTABLE = fileURLToPath(new URL('../dist/cvmfs-graphdriver', import.meta.url));

function say(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

async function show(dockerd: Dockerd, args: string[]): Promise<void> {
  process.stdout.write(`$ docker ${args.join(' ')}\n`);
  const { stdout } = await dockerd.docker(args);
  process.stdout.write(stdout.endsWith('\n') || stdout === '' ? stdout : `${stdout}\n`);
}

if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: run \`npm run build\` first (npm run demo does)`);
const name = uniquePluginName();
say(`starting ${EXECUTABLE} as graphdriver plugin "${name}" and a private dockerd using it`);
const plugin = await startLegacyPlugin({ name, executable: EXECUTABLE });
let dockerd: Dockerd | undefined;
try {
  dockerd = await startDockerd({ storageDriver: name });
  await show(dockerd, ['info', '--format', 'Storage Driver: {{.Driver}} {{range .DriverStatus}}| {{index . 0}}: {{index . 1}} {{end}}']);

  say('loading a 4-layer sample image (owners, setuid, xattrs, devices, hardlinks, whiteouts, opaque dirs)');
  const image = await featureImage();
  await show(dockerd, ['load', '-i', image.path]);
  await show(dockerd, ['history', '--format', '{{.Size}}\t{{.CreatedBy}}', image.tag]);

  say('running it: the deleted /bin/vi is gone, the lower layers show through');
  await show(dockerd, ['run', '--rm', '--network', 'none', image.tag, 'sh', '-c', 'ls -l /bin/vi 2>&1; ls -ln /feat | head -8']);

  say('changing a container, then docker diff and docker commit');
  await show(dockerd, ['run', '--name', 'demo', '--network', 'none', image.tag, 'sh', '-c', 'rm /bin/ls; echo hello > /greeting']);
  await show(dockerd, ['diff', 'demo']);
  await show(dockerd, ['commit', 'demo', 'demo/committed:1']);
  await show(dockerd, ['run', '--rm', '--network', 'none', 'demo/committed:1', 'cat', '/greeting']);
  await show(dockerd, ['rm', 'demo']);
  say('done: thin images from CernVM-FS (make-thin, lazy mounts) come next; see README.md');
} finally {
  await dockerd?.stop();
  await plugin.stop();
}
