// The driver as a legacy plugin under a real dockerd: the everyday commands, dockerd restarts
// and a plugin crash (dockerd never re-sends Init to a restarted plugin).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd, type PluginProcess } from '../helpers/dockerd.ts';
import { busyboxRootfsTar, featureImage } from '../helpers/images.ts';
import { pollUntil } from '../helpers/process.ts';

const RUN = ['run', '--rm', '--network', 'none'];

describe('serve-driver as a legacy plugin', () => {
  const name = uniquePluginName();
  let stateDir: string;
  let plugin: PluginProcess;
  let dockerd: Dockerd;
  const home = () => join(dockerd.dataRoot, name);

  const startPlugin = () => startLegacyPlugin({ name, debug: true, stateFile: join(stateDir, 'init.json') });

  before(async () => {
    stateDir = await mkdtemp('/tmp/gd-state-');
    plugin = await startPlugin();
    dockerd = await startDockerd({ storageDriver: name });
  });
  // dockerd first: its shutdown sends Cleanup to the plugin.
  after(async () => {
    await dockerd?.stop();
    await plugin?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('docker import and run', async () => {
    await dockerd.docker(['import', await busyboxRootfsTar(), 'gd/busybox:1']);
    const { stdout } = await dockerd.docker([...RUN, 'gd/busybox:1', 'sh', '-c', 'echo hi; cat /proc/1/cmdline']);
    assert.match(stdout, /^hi\n/);
    const info = await dockerd.docker(['info', '--format', '{{.Driver}} {{json .DriverStatus}}']);
    assert.match(info.stdout, new RegExp(`^${name} .*"Native Overlay Diff","true"`));
  });

  test('docker load of a multi-layer image shows its deletions and opaque dirs', async () => {
    const image = await featureImage();
    await dockerd.docker(['load', '-i', image.path]);
    const { stdout } = await dockerd.docker([...RUN, image.tag, 'sh', '-c', 'ls /bin/vi 2>&1; ls /feat | head -50']);
    assert.match(stdout, /\/bin\/vi: No such file or directory/);
  });

  test('exec, diff, ps -s and inspect on a running container', async () => {
    await dockerd.docker(['run', '-d', '--name', 'busy', '--network', 'none', 'gd/busybox:1', 'sleep', '600']);
    await dockerd.docker(['exec', 'busy', 'sh', '-c', 'echo x > /new; rm /bin/ls; mkdir /opt; echo y > /opt/z']);
    const diff = await dockerd.docker(['diff', 'busy']);
    assert.deepEqual(diff.stdout.trim().split('\n'), ['C /bin', 'D /bin/ls', 'A /new', 'A /opt', 'A /opt/z']);
    const sizes = await dockerd.docker(['ps', '-s', '--format', '{{.Size}}', '--filter', 'name=busy']);
    assert.match(sizes.stdout, /^4B \(virtual /);
    const data = JSON.parse((await dockerd.docker(['inspect', '--format', '{{json .GraphDriver}}', 'busy'])).stdout);
    assert.equal(data.Name, name);
    assert.ok(data.Data.MergedDir.startsWith(home()), `MergedDir ${data.Data.MergedDir} is under ${home()}`);
    assert.ok(data.Data.LowerDir, 'a container has lower dirs');
  });

  test('commit, save, rmi and load back', async () => {
    await dockerd.docker(['commit', 'busy', 'gd/committed:1']);
    await dockerd.docker(['rm', '-f', 'busy']);
    const check = ['sh', '-c', 'cat /new /opt/z; ls /bin/ls 2>&1; true'];
    const first = await dockerd.docker([...RUN, 'gd/committed:1', ...check]);
    assert.equal(first.stdout, 'x\ny\nls: /bin/ls: No such file or directory\n');
    const saved = join(dockerd.dir, 'committed.tar');
    // dockerd verifies every layer it saves against its diff id, so this checks what Get exposes.
    await dockerd.docker(['save', '-o', saved, 'gd/committed:1']);
    await dockerd.docker(['rmi', 'gd/committed:1']);
    await dockerd.docker(['load', '-i', saved]);
    const again = await dockerd.docker([...RUN, 'gd/committed:1', ...check]);
    assert.equal(again.stdout, first.stdout);
  });

  test('rm and rmi remove the layers from the store', async () => {
    // A removed layer is renamed to a dot name at once, and its files deleted after.
    const entries = async () => (await readdir(home())).filter((name) => !name.startsWith('.')).length;
    const before = await entries();
    await dockerd.docker(['create', '--name', 'short', 'gd/committed:1', 'true']);
    assert.equal(await entries(), before + 2, 'a container adds its layer and its init layer');
    await dockerd.docker(['rm', 'short']);
    await dockerd.docker(['rmi', 'gd/committed:1']);
    assert.equal(await entries(), before - 1, 'rmi removes the committed layer');
    await pollUntil(async () => (await readdir(home())).every((name) => !name.startsWith('.')), 10_000, () => 'the removed layers\' files are deleted');
  });

  test('a dockerd restart keeps images and stopped containers', async () => {
    await dockerd.docker(['create', '--name', 'kept', '--network', 'none', 'gd/busybox:1', 'cat', '/etc/hostname']);
    await dockerd.restart();
    const { stdout } = await dockerd.docker(['start', '-a', 'kept']);
    assert.match(stdout, /^[0-9a-f]{12}\n$/);
    await dockerd.docker(['rm', 'kept']);
  });

  test('a crashed plugin restarted without Init carries on, running containers included', async () => {
    await dockerd.docker(['run', '-d', '--name', 'survivor', '--network', 'none', 'gd/busybox:1', 'sleep', '600']);
    await plugin.kill();
    await plugin.stop();
    plugin = await startPlugin();
    const { stdout } = await dockerd.docker([...RUN, 'gd/busybox:1', 'echo', 'after restart']);
    assert.equal(stdout, 'after restart\n');
    const inside = await dockerd.docker(['exec', 'survivor', 'cat', '/proc/1/cmdline']);
    assert.match(inside.stdout, /^sleep/);
    await dockerd.docker(['rm', '-f', 'survivor']);
    const mounted = await dockerd.docker([...RUN, 'gd/busybox:1', 'true']);
    assert.equal(mounted.code, 0);
  });
});
