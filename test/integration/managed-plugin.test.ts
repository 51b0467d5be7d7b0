// The managed (v2) plugin built in dist/plugin: installed with `docker plugin create`, enabled,
// then used as the storage driver after a dockerd restart (dockerd can only pick a plugin as
// its storage driver at start-up).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { startDockerd, uniquePluginName, type Dockerd } from '../helpers/dockerd.ts';
import { busyboxRootfsTar, featureImage } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { run } from '../helpers/process.ts';

const PLUGIN_DIR = fileURLToPath(new URL('../../dist/plugin', import.meta.url));
const RUN = ['run', '--rm', '--network', 'none'];
const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/cvmfs/', import.meta.url));
const FQRN = 'fixture.cvmfs.test';
const FIXTURE_LAYERS = [
  'ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789',
  '3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931',
];

describe('the managed plugin from dist/plugin', () => {
  const name = uniquePluginName();
  let dir: string;
  let dockerd: Dockerd | undefined;
  let nginx: NginxServer | undefined;

  before(async () => {
    if (!existsSync(join(PLUGIN_DIR, 'config.json'))) {
      throw new Error(`${PLUGIN_DIR} is missing: run \`npm run build\` first (npm test does)`);
    }
    dir = await mkdtemp('/tmp/gd-managed-');
    // The plugin reads the host's CernVM-FS configuration through a settable bind mount; the
    // repository's key is taken from there.
    await mkdir(join(dir, 'cvmfs-config'));
    await copyFile(join(FIXTURES, `${FQRN}.pub`), join(dir, 'cvmfs-config', `${FQRN}.pub`));
    nginx = await startNginx({ [FQRN]: join(FIXTURES, FQRN) });
    const repositories = `${FQRN}=${nginx.repositoryUrl(FQRN)},key=/cvmfs_ext_config/${FQRN}.pub`;
    const installer = await startDockerd({ storageDriver: 'vfs', dataRoot: join(dir, 'root') });
    try {
      await installer.docker(['plugin', 'create', name, PLUGIN_DIR]);
      await installer.docker(['plugin', 'set', name, `cvmfs_ext_config.source=${join(dir, 'cvmfs-config')}`, `CVMFS_GRAPHDRIVER_REPOSITORIES=${repositories}`, 'DEBUG=1']);
      await installer.docker(['plugin', 'enable', name]);
    } finally {
      await installer.stop();
    }
    dockerd = await startDockerd({ storageDriver: name, dataRoot: join(dir, 'root') });
  });

  after(async () => {
    if (dockerd) {
      // Stopping dockerd stops the plugin; the plugin's files go with the data-root.
      await dockerd.stop();
    }
    await nginx?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('dockerd runs on it: import, load, run, commit', async () => {
    const d = dockerd!;
    const info = await d.docker(['info', '--format', '{{.Driver}} {{json .DriverStatus}}']);
    assert.match(info.stdout, new RegExp(`^${name} .*"Backing Filesystem"`));
    await d.docker(['import', await busyboxRootfsTar(), 'gd/busybox:1']);
    assert.equal((await d.docker([...RUN, 'gd/busybox:1', 'echo', 'managed'])).stdout, 'managed\n');
    const image = await featureImage();
    await d.docker(['load', '-i', image.path]);
    assert.match((await d.docker([...RUN, image.tag, 'sh', '-c', 'ls /bin/vi 2>&1; true'])).stdout, /No such file/);
    await d.docker(['run', '--name', 'c1', '--network', 'none', 'gd/busybox:1', 'sh', '-c', 'echo x > /new']);
    await d.docker(['commit', 'c1', 'gd/committed:1']);
    await d.docker(['rm', 'c1']);
    assert.equal((await d.docker([...RUN, 'gd/committed:1', 'cat', '/new'])).stdout, 'x\n');
  });

  test('its layers live under the propagated mount, so dockerd sees the mounts', async () => {
    const d = dockerd!;
    const data = JSON.parse((await d.docker(['inspect', '--format', '{{json .GraphDriver.Data}}', 'gd/committed:1'])).stdout);
    // GetMetadata paths are the plugin's own view: Home is <propagatedMount>/<driver name>.
    assert.ok(String(data.UpperDir).startsWith(`/mnt/${name}/`), `UpperDir ${data.UpperDir}`);
  });

  test('thin images run, their repository mounted inside the plugin and seen by dockerd', async () => {
    const d = dockerd!;
    const thin = { version: '1.0', layers: FIXTURE_LAYERS.map((hex) => ({ digest: hex, url: `cvmfs://${FQRN}/.layers/${hex.slice(0, 2)}/${hex}/layerfs` })) };
    await writeFile(join(dir, 'thin.json'), JSON.stringify(thin));
    await run('tar', ['-C', dir, '-cf', join(dir, 'thin.tar'), 'thin.json']);
    await d.docker(['import', join(dir, 'thin.tar'), 'fixture/thin:1']);
    const { stdout } = await d.docker([...RUN, '-v', '/bin/busybox:/busybox:ro', 'fixture/thin:1', '/busybox', 'sh', '-c', '/busybox cat /README.txt; /busybox ls /etc']);
    assert.match(stdout, /^fixture\.cvmfs\.test layer 2\nconfig\.ini\n/);
    // The plugin's rootfs has what passthrough needs (perl), and the kernel took it.
    const [pluginId] = await readdir(join(dir, 'root', 'plugins')).then((names) => names.filter((entry) => /^[0-9a-f]{64}$/.test(entry)));
    const mountLog = await readFile(join(dir, 'root', 'plugins', pluginId!, 'rootfs', 'var/log/cvmfs-graphdriver', `${FQRN}.log`), 'utf8');
    assert.match(mountLog, /fuse: passthrough: the kernel reads files opened here straight from their cached copies/);
    assert.doesNotMatch(mountLog, /no passthrough/);
  });
});
