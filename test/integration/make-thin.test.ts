// make-thin and thin images end to end: a real registry holds a multi-layer image with
// deletions and opaque dirs; make-thin publishes its layers into a repository (embedded
// publisher) served by nginx and loads the thin image into a dockerd running serve-driver;
// the container's tree is compared with the original image's under Docker's overlay2.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { initRepository } from '../../src/core/cvmfs/publish/init.ts';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd, type PluginProcess } from '../helpers/dockerd.ts';
import { featureImage } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { run } from '../helpers/process.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { diffTrees, exportTree } from '../helpers/tree.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const MAIN = join(ROOT, 'src/main.ts');
const FQRN = 'thin.test.local';

describe('make-thin, then the thin image under serve-driver', { timeout: 600_000 }, () => {
  const name = uniquePluginName();
  let dir: string;
  let registry: TestRegistry;
  let nginx: NginxServer;
  let plugin: PluginProcess;
  let ours: Dockerd;
  let reference: Dockerd;
  let source: string;

  const makeThin = (args: string[], allowFail = false) =>
    run(NODE, [MAIN, 'make-thin', ...args], { env: { ...process.env, DOCKER_HOST: ours.host }, allowFail });

  before(async () => {
    dir = await mkdtemp('/tmp/gd-make-thin-');
    registry = await startRegistry();
    const image = await featureImage();
    source = `${registry.host}/test/feature:1`;
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${image.path}`, `docker://${source}`]);
    await initRepository(join(dir, 'repo'), { fqrn: FQRN });
    nginx = await startNginx({ [FQRN]: join(dir, 'repo', 'storage') });
    plugin = await startLegacyPlugin({
      name,
      extraArgs: ['--repository', `${FQRN}=${nginx.repositoryUrl(FQRN)},key=${join(dir, 'repo', 'keys', `${FQRN}.pub`)}`, '--cache', join(dir, 'cache'), '--log-dir', join(dir, 'logs')],
    });
    ours = await startDockerd({ storageDriver: name });
    reference = await startDockerd({ storageDriver: 'overlay2', insecureRegistries: [registry.host] });
    await reference.docker(['pull', source]);
  });

  after(async () => {
    await reference?.stop();
    await ours?.stop();
    await plugin?.stop();
    await nginx?.stop();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('converts by tag, publishing every layer, and loads the thin image', async () => {
    const { stdout } = await makeThin(['-i', source, '-o', 'thin/feature:1', '-r', join(dir, 'repo'), '--json']);
    const result = JSON.parse(stdout);
    assert.equal(result.layers.length, 4);
    assert.ok(result.layers.every((layer: { state: string }) => layer.state === 'published'));
    assert.equal(result.thinJson.layers[0].url, `cvmfs://${FQRN}/.layers/${result.thinJson.layers[0].digest.slice(0, 2)}/${result.thinJson.layers[0].digest}/layerfs`);
    const images = await ours.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Size}}', 'thin/feature']);
    assert.match(images.stdout, /^thin\/feature:1 [\d.]+k?B\n$/, `the thin image is tiny: ${images.stdout}`);
  });

  test('the thin image keeps the original config, plus an origin label', async () => {
    const config = async (d: Dockerd, image: string) => JSON.parse((await d.docker(['image', 'inspect', '--format', '{{json .Config}}', image])).stdout);
    const thin = await config(ours, 'thin/feature:1');
    const original = await config(reference, source);
    assert.match(thin.Labels['org.cvmfs.graphdriver.origin'], new RegExp(`^${registry.host}/test/feature:1@sha256:[0-9a-f]{64}$`));
    delete thin.Labels['org.cvmfs.graphdriver.origin'];
    if (Object.keys(thin.Labels).length === 0) thin.Labels = original.Labels;
    assert.deepEqual(thin, original);
  });

  test('a container of the thin image has the same tree as the original under overlay2', async () => {
    const [mine, theirs] = await Promise.all([exportTree(ours, 'thin/feature:1'), exportTree(reference, source)]);
    // CernVM-FS catalogs keep hard links only inside one directory, and ingestion (ours, like
    // cvmfs_server's) stores every hard link as an independent copy: same content and metadata,
    // no shared inode. That is the one difference allowed.
    const differences = diffTrees(mine, theirs, ['thin', 'overlay2']);
    assert.deepEqual(differences.filter((line) => !/: hardlinks thin=- overlay2=\[/.test(line)), []);
    assert.ok(differences.length <= 5, `only the image's hard links differ: ${differences.length} lines`);
  });

  test('a second conversion of the same image publishes nothing new', async () => {
    const { stdout } = await makeThin(['-i', source, '-o', 'thin/feature:2', '-r', join(dir, 'repo'), '--json']);
    assert.ok(JSON.parse(stdout).layers.every((layer: { state: string }) => layer.state === 'already there'));
  });

  test('an unknown tag fails clearly and publishes nothing', async () => {
    const failed = await makeThin(['-i', `${registry.host}/test/feature:nope`, '-o', 'thin/nope:1', '-r', join(dir, 'repo')], true);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /not found|unknown/i);
  });
});
