// A thin image whose thin.json points at the layers of the fixture repository (made by the real
// CernVM-FS tools), served by nginx and configured through dockerd's storage options, run
// through serve-driver with the embedded client: the layers stack with their deletions and
// opaque dirs, only what a container reads is fetched, cached files survive the server going
// away, mounts and configuration survive a plugin restart, and the mount is made by the
// process the driver keeps standing by.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { processCommandLines, run } from '../helpers/process.ts';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd, type PluginProcess } from '../helpers/dockerd.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';

const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/cvmfs/', import.meta.url));
const FQRN = 'fixture.cvmfs.test';
const LAYERS = [
  'ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789',
  '3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931',
];
// The fixture's layers hold no programs; busybox comes in from the host, outside the image.
const RUN = ['run', '--rm', '--network', 'none', '-v', '/bin/busybox:/busybox:ro', 'fixture/thin:1', '/busybox', 'sh', '-c'];

/** Processes started as `standby-mount`, each with the files it holds open. */
async function standbyProcesses(): Promise<{ pid: number; files: string[] }[]> {
  const standbys = (await processCommandLines()).filter(({ argv }) => argv.includes('standby-mount'));
  return Promise.all(
    standbys.map(async ({ pid }) => {
      const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
      return { pid, files: await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) };
    }),
  );
}

describe('a thin image on the fixture repository', { timeout: 600_000 }, () => {
  const name = uniquePluginName();
  let dir: string;
  let nginx: NginxServer;
  let plugin: PluginProcess;
  let dockerd: Dockerd;
  let stateFile: string;

  const startPlugin = () =>
    startLegacyPlugin({
      name,
      stateFile,
      extraArgs: [
        '--cache', join(dir, 'cache'),
        '--log-dir', join(dir, 'logs'),
      ],
    });

  const bytesServed = async () => (await nginx.accessLog()).reduce((sum, entry) => sum + entry.bytesSent, 0);

  before(async () => {
    dir = await mkdtemp('/tmp/gd-thin-');
    stateFile = join(dir, 'init.json');
    nginx = await startNginx({ [FQRN]: join(FIXTURES, FQRN) });
    plugin = await startPlugin();
    // The repository comes from dockerd's storage options, which a restarted plugin takes from the Init it saved.
    dockerd = await startDockerd({ storageDriver: name, storageOpts: [`cvmfs.repository=${FQRN}=${nginx.repositoryUrl(FQRN)},key=${join(FIXTURES, `${FQRN}.pub`)}`] });
    const thin = {
      version: '1.0',
      origin: 'fixture layers',
      layers: LAYERS.map((digest) => ({ digest, url: `cvmfs://${FQRN}/.layers/${digest.slice(0, 2)}/${digest}/layerfs` })),
    };
    await writeFile(join(dir, 'thin.json'), JSON.stringify(thin, null, 2));
    await run('tar', ['-C', dir, '-cf', join(dir, 'thin.tar'), 'thin.json']);
    await dockerd.docker(['import', join(dir, 'thin.tar'), 'fixture/thin:1']);
  });

  after(async () => {
    await dockerd?.stop();
    await plugin?.stop();
    await nginx?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('runs with the layers stacked: upper files win, deletions and opaque dirs apply', async () => {
    const { stdout } = await dockerd.docker([...RUN, 'B=/busybox; $B cat /README.txt; $B ls -a /etc; $B ls /removed 2>&1; $B ls -a / | $B grep -c -e cvmfscatalog -e thin.json -e "^.wh"; true']);
    const [readme, ...rest] = stdout.split('\n');
    assert.match(readme!, /layer 2/i, `README.txt comes from the upper layer: ${readme}`);
    assert.match(rest.join('\n'), /^\.\n\.\.\nconfig\.ini\n/, 'etc is opaque in layer 2: only its own config.ini');
    assert.match(stdout, /ls: \/removed: No such file or directory/);
    assert.match(stdout, /\n0\n$/, 'no .cvmfscatalog, thin.json or whiteout files show');
  });

  test('the repository is mounted by the process standing by, and another takes its place', async () => {
    const repositoryLog = join(dir, 'logs', `${FQRN}.log`);
    const standbys = await standbyProcesses();
    const serving = standbys.filter(({ files }) => files.includes(repositoryLog));
    assert.equal(serving.length, 1, 'one standby process serves the mount, logging to the repository\'s log');
    assert.match(await readFile(repositoryLog, 'utf8'), new RegExp(`serving ${FQRN.replaceAll('.', '\\.')} revision`));
    // The next one starts a moment after the first is taken.
    const waiting = async () => (await standbyProcesses()).some(({ files }) => !files.includes(repositoryLog));
    for (const deadline = Date.now() + 10_000; !(await waiting()) && Date.now() < deadline; ) await sleep(100);
    assert.ok(await waiting(), 'a new standby process waits');
  });

  test('fetches only what containers read', async () => {
    const before = await bytesServed();
    await dockerd.docker([...RUN, '/busybox cat /perm/exec-0755 >/dev/null']);
    const small = (await bytesServed()) - before;
    assert.ok(small < 512 * 1024, `a small read fetched ${small} bytes; the repository holds a 3 MiB file that must not be fetched`);
    const { stdout } = await dockerd.docker([...RUN, '/busybox sha1sum /data/random-3MiB.bin']);
    assert.match(stdout, /^56e8acb6c339bfc29bc1d3c7d65e0bad084ce0d1 /);
    assert.ok((await bytesServed()) - before > 3 * 1024 * 1024, 'reading the big file fetched it');
  });

  test('docker build FROM the thin image, commit and save keep the thin base thin', async () => {
    const context = join(dir, 'context');
    await run('mkdir', ['-p', context]);
    await run('cp', ['/bin/busybox', join(context, 'busybox')]);
    await writeFile(join(context, 'Dockerfile'), 'FROM fixture/thin:1\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox rm /README.txt; echo built > /built"]\n');
    await dockerd.docker(['build', '--network', 'none', '-t', 'fixture/built:1', context]);
    const { stdout } = await dockerd.docker(['run', '--rm', '--network', 'none', 'fixture/built:1', '/bin/busybox', 'sh', '-c', '/bin/busybox cat /built /bin/tool.sh; /bin/busybox ls /README.txt 2>&1; true']);
    assert.match(stdout, /^built\n/);
    assert.match(stdout, /No such file or directory/);
    const saved = join(dir, 'thin-saved.tar');
    await dockerd.docker(['save', '-o', saved, 'fixture/thin:1']);
    const listing = (await run('tar', ['-tvf', saved])).stdout;
    const layerSizes = [...listing.matchAll(/\s(\d+) \S+ \S+ \S+\/layer\.tar/g)].map((m) => Number(m[1]));
    assert.equal(layerSizes.length, 1);
    assert.ok(layerSizes[0]! <= 10_240, `the saved thin image carries only thin.json (${layerSizes[0]} bytes)`);
  });

  test('running containers and new ones survive a plugin restart; the mount is adopted, the configuration kept', async () => {
    await dockerd.docker(['run', '-d', '--name', 'long', '--network', 'none', '-v', '/bin/busybox:/busybox:ro', 'fixture/thin:1', '/busybox', 'sleep', '600']);
    await plugin.kill();
    await plugin.stop();
    plugin = await startPlugin();
    const inside = await dockerd.docker(['exec', 'long', '/busybox', 'cat', '/etc/config.ini']);
    assert.ok(inside.stdout.length > 0, 'the running container still reads its files');
    await dockerd.docker(['rm', '-f', 'long']);
    // Mounting the repository again needs its URL and key, which only the storage options gave.
    await run('umount', [join(dockerd.dataRoot, name, 'cvmfs', FQRN)]);
    const { stdout } = await dockerd.docker([...RUN, '/busybox cat /bin/tool.sh']);
    assert.ok(stdout.length > 0);
  });

  test('with the server down, cached files keep working and uncached ones fail with EIO', async () => {
    await dockerd.docker(['run', '-d', '--name', 'offline', '--network', 'none', '-v', '/bin/busybox:/busybox:ro', 'fixture/thin:1', '/busybox', 'sleep', '600']);
    await nginx.stop();
    const cached = await dockerd.docker(['exec', 'offline', '/busybox', 'cat', '/perm/exec-0755']);
    assert.ok(cached.stdout.length > 0);
    const uncached = await dockerd.docker(['exec', 'offline', '/busybox', 'cat', '/deep/level2/level3/level4/leaf.txt'], { allowFail: true });
    assert.notEqual(uncached.code, 0);
    assert.match(uncached.stderr, /Input\/output error/);
    await dockerd.docker(['rm', '-f', 'offline']);
  });
});
