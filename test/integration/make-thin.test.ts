// make-thin and thin images end to end: a real registry holds a multi-layer image with
// deletions and opaque dirs; make-thin publishes its layers into a repository (embedded
// publisher) served by nginx and loads the thin image into a dockerd running serve-driver;
// the container's tree is compared with the original image's under Docker's overlay2. A Debian
// minbase from debootstrap goes the same way, as an image made of a real distribution.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { initRepository } from '../../src/core/cvmfs/publish/init.ts';
import { startDockerd, startLegacyPlugin, uniquePluginName, type Dockerd, type PluginProcess } from '../helpers/dockerd.ts';
import { debianMinbaseImage, featureImage } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { run } from '../helpers/process.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { diffTrees, exportTree } from '../helpers/tree.ts';
import { readAll, startProxy } from '../registry/proxy.ts';
import { buildIndex, buildTestImage, writeImageDirectory, type TestImage } from '../registry/test-images.ts';

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
  let sourceDigest: string;

  /** Pushes a small image, or an index over several, to a test registry. */
  const pushTestImageTo = async (to: TestRegistry, target: string, ...images: TestImage[]) => {
    const layout = join(dir, `image-${to.host.replace(/\W/g, '-')}-${target.replace(/\W/g, '-')}`);
    await writeImageDirectory(layout, images.length === 1 ? images[0]! : buildIndex(images));
    await to.pushDirectory(layout, target);
  };
  const pushTestImage = (target: string, images: TestImage[]) => pushTestImageTo(registry, target, ...images);

  const makeThin = (args: string[], allowFail = false) =>
    run(NODE, [MAIN, 'make-thin', ...args], { env: { ...process.env, DOCKER_HOST: ours.host }, allowFail });

  /** The thin image's config is the original's, plus the origin label make-thin adds. */
  const assertSameConfig = async (thinImage: string, original: string) => {
    const config = async (d: Dockerd, image: string) => JSON.parse((await d.docker(['image', 'inspect', '--format', '{{json .Config}}', image])).stdout);
    const thin = await config(ours, thinImage);
    const expected = await config(reference, original);
    assert.match(thin.Labels['org.cvmfs.graphdriver.origin'], new RegExp(`^${original.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}@sha256:[0-9a-f]{64}$`));
    delete thin.Labels['org.cvmfs.graphdriver.origin'];
    if (Object.keys(thin.Labels).length === 0) thin.Labels = expected.Labels;
    assert.deepEqual(thin, expected);
  };

  /**
   * A fresh container of the thin image has the tree of one of the original under overlay2.
   * CernVM-FS catalogs keep hard links only inside one directory, and ingestion (ours, like
   * cvmfs_server's) stores every hard link as an independent copy: same content and metadata,
   * no shared inode. That is the one difference allowed, and only on paths the original links.
   * Returns how many paths were compared.
   */
  const assertSameTree = async (thinImage: string, original: string) => {
    const [mine, theirs] = await Promise.all([exportTree(ours, thinImage), exportTree(reference, original)]);
    const unlinked = new Set(
      [...theirs.values()].flatMap((entry) => (entry.hardlinks ? [`${entry.path}: hardlinks thin=- overlay2=[${entry.hardlinks.join(', ')}]`] : [])),
    );
    assert.deepEqual(diffTrees(mine, theirs, ['thin', 'overlay2']).filter((line) => !unlinked.has(line)), []);
    return theirs.size;
  };

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
    ours = await startDockerd({ storageDriver: name, insecureRegistries: [registry.host] });
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
    sourceDigest = result.manifestDigest;
    assert.equal(result.layers.length, 4);
    assert.ok(result.layers.every((layer: { state: string }) => layer.state === 'published'));
    assert.equal(result.thinJson.layers[0].url, `cvmfs://${FQRN}/.layers/${result.thinJson.layers[0].digest.slice(0, 2)}/${result.thinJson.layers[0].digest}/layerfs`);
    const images = await ours.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Size}}', 'thin/feature']);
    assert.match(images.stdout, /^thin\/feature:1 [\d.]+k?B\n$/, `the thin image is tiny: ${images.stdout}`);
  });

  test('the thin image keeps the original config, plus an origin label', async () => {
    await assertSameConfig('thin/feature:1', source);
  });

  test('a container of the thin image has the same tree as the original under overlay2', async () => {
    await assertSameTree('thin/feature:1', source);
  });

  test('a second conversion of the same image publishes nothing new', async () => {
    const { stdout } = await makeThin(['-i', source, '-o', 'thin/feature:2', '-r', join(dir, 'repo'), '--json']);
    assert.ok(JSON.parse(stdout).layers.every((layer: { state: string }) => layer.state === 'already there'));
  });

  test('a Debian minbase from debootstrap converts by tag, keeps its config, works and matches overlay2', async () => {
    const image = await debianMinbaseImage();
    const minbase = `${registry.host}/test/debian-minbase:bookworm`;
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${image.path}`, `docker://${minbase}`]);
    await reference.docker(['pull', minbase]);
    const { stdout } = await makeThin(['-i', minbase, '-o', 'thin/minbase:1', '-r', join(dir, 'repo'), '--json']);
    assert.deepEqual(JSON.parse(stdout).layers.map((layer: { state: string }) => layer.state), ['published']);
    await assertSameConfig('thin/minbase:1', minbase);

    // Run by the image's own Cmd (bash, reading the script from stdin). dpkg --verify checks
    // every packaged file against its recorded md5sum, and apt must find its libraries.
    const script = "set -e; cat /etc/debian_version; dpkg-query -W -f='${Package}\\n' | wc -l; apt-get --version | head -n 1; dpkg --verify; echo verified\n";
    const runIn = async (d: Dockerd, ref: string) => (await d.docker(['run', '--rm', '-i', '--network', 'none', ref], { input: script })).stdout;
    const [thin, original] = await Promise.all([runIn(ours, 'thin/minbase:1'), runIn(reference, minbase)]);
    assert.match(thin, /^12\.\d+\n\d{2,}\napt \d[^\n]*\nverified\n$/);
    assert.equal(thin, original);

    assert.ok((await assertSameTree('thin/minbase:1', minbase)) > 5000, 'the whole system was compared');
  });

  test('converts by digest to a docker-archive, and pushes a thin image that pulls and runs', async () => {
    const file = join(dir, 'thin-by-digest.tar');
    const pushed = `${registry.host}/test/feature:thin`;
    const { stdout } = await makeThin(['-i', `${registry.host}/test/feature@${sourceDigest}`, '-o', pushed, '-r', join(dir, 'repo'), '--push', '--output-file', file, '--json']);
    const result = JSON.parse(stdout);
    assert.match(result.pushed, new RegExp(`^${pushed}@sha256:[0-9a-f]{64}$`));
    assert.ok(existsSync(file));
    assert.equal(result.loaded, undefined, 'with --push or --output-file nothing is loaded unless --load');
    await ours.docker(['pull', pushed]);
    const { stdout: owned } = await ours.docker(['run', '--rm', '--network', 'none', pushed, 'cat', '/feat/owned']);
    assert.equal(owned, 'owned by 1000:1000\n');
  });

  test('picks the asked platform from a multi-platform index, and names the ones it has', async () => {
    const amd64 = buildTestImage({ platform: { os: 'linux', architecture: 'amd64' }, layers: [{ 'which.txt': 'amd64\n' }] });
    const arm64 = buildTestImage({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [{ 'which.txt': 'arm64\n' }] });
    await pushTestImage('test/multi:1', [amd64, arm64]);
    const { stdout } = await makeThin(['-i', `${registry.host}/test/multi:1`, '-o', 'thin/multi:arm64', '-r', join(dir, 'repo'), '--platform', 'linux/arm64', '--output-file', join(dir, 'multi.tar'), '--json']);
    assert.deepEqual(JSON.parse(stdout).thinJson.layers.map((layer: { digest: string }) => `sha256:${layer.digest}`), arm64.layers.map((layer) => layer.digest));
    const missing = await makeThin(['-i', `${registry.host}/test/multi:1`, '-o', 'thin/multi:s390x', '-r', join(dir, 'repo'), '--platform', 'linux/s390x'], true);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no image for linux\/s390x; available: linux\/amd64, linux\/arm64\/v8/);
  });

  test('a blob the registry serves tampered fails the conversion and publishes nothing', async () => {
    const image = buildTestImage({ layers: [{ 'tampered.txt': 'content that will not arrive intact\n'.repeat(100) }] });
    await pushTestImage('test/tampered:1', [image]);
    const proxy = await startProxy(registry.baseUrl);
    proxy.intercept = async (request: IncomingMessage, response: ServerResponse, forward) => {
      if (!request.url?.includes(`/blobs/${image.layers[0]!.digest}`)) return false;
      const upstream = await forward();
      const body = await readAll(upstream);
      body[body.length >> 1] ^= 0xff;
      response.writeHead(upstream.statusCode ?? 200, { 'content-length': body.length, 'content-type': 'application/octet-stream' }).end(body);
      return true;
    };
    try {
      const failed = await makeThin(['-i', `${proxy.host}/test/tampered:1`, '-o', 'thin/tampered:1', '-r', join(dir, 'repo'), '--output-file', join(dir, 'tampered.tar')], true);
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, /digest/);
      assert.equal(existsSync(join(dir, 'tampered.tar')), false, 'no thin image is written');
    } finally {
      await proxy.stop();
    }
    const retry = await makeThin(['-i', `${registry.host}/test/tampered:1`, '-o', 'thin/tampered:1', '-r', join(dir, 'repo'), '--output-file', join(dir, 'tampered.tar'), '--json']);
    assert.equal(JSON.parse(retry.stdout).layers[0].state, 'published', 'the tampered layer had not been published');
  });

  test('a repository that cannot be written fails clearly and stays as it was', async () => {
    const image = buildTestImage({ layers: [{ 'readonly.txt': 'never published\n' }] });
    await pushTestImage('test/readonly:1', [image]);
    const repo = join(dir, 'repo');
    await run('mount', ['--bind', repo, repo]);
    try {
      await run('mount', ['-o', 'remount,bind,ro', repo]);
      const failed = await makeThin(['-i', `${registry.host}/test/readonly:1`, '-o', 'thin/readonly:1', '-r', repo, '--output-file', join(dir, 'readonly.tar')], true);
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, /read-only file system|EROFS/i);
    } finally {
      await run('umount', [repo]);
    }
    const check = await run(NODE, [MAIN, 'repo', 'check', repo]);
    assert.match(check.stdout, /no problems found/);
  });

  test('reading a file fetches little more than that file', async () => {
    const before = (await nginx.accessLog()).reduce((sum, entry) => sum + entry.bytesSent, 0);
    const { stdout } = await ours.docker(['run', '--rm', '--network', 'none', 'thin/feature:1', 'cat', '/feat/xattrs']);
    assert.equal(stdout, 'has user xattrs\n');
    const fetched = (await nginx.accessLog()).reduce((sum, entry) => sum + entry.bytesSent, 0) - before;
    assert.ok(fetched < 64 * 1024, `a 16-byte file cost ${fetched} bytes from the repository server`);
  });

  test('docker history, inspect and image prune treat thin images like any other', async () => {
    const history = await ours.docker(['history', '--format', '{{.CreatedBy}}', 'thin/feature:1']);
    assert.match(history.stdout, /^cvmfs-graphdriver make-thin from /);
    const inspected = JSON.parse((await ours.docker(['image', 'inspect', '--format', '{{json .GraphDriver}}', 'thin/feature:1'])).stdout);
    assert.equal(inspected.Name, name);
    await ours.docker(['tag', 'thin/feature:1', 'thin/prunable:1']);
    await ours.docker(['rmi', 'thin/feature:2']);
    const pruned = await ours.docker(['image', 'prune', '--all', '--force', '--filter', 'label=org.cvmfs.graphdriver.origin']);
    assert.match(pruned.stdout, /Total reclaimed space/);
    assert.equal((await ours.docker(['images', '-q', 'thin/prunable'])).stdout, '', 'unused thin images are pruned');
  });

  test('a corrupted object fails the read with an I/O error, never wrong bytes', async () => {
    await pushTestImage('test/corrupt:1', [buildTestImage({ layers: [{ 'victim.txt': 'these bytes will be damaged on the server\n' }] })]);
    const archive = join(dir, 'corrupt.tar');
    const result = JSON.parse((await makeThin(['-i', `${registry.host}/test/corrupt:1`, '-o', 'thin/corrupt:1', '-r', join(dir, 'repo'), '--output-file', archive, '--json'])).stdout);
    const layer = result.thinJson.layers[0];
    const stat = JSON.parse((await run(NODE, [MAIN, 'repo', 'stat', join(dir, 'repo'), `/.layers/${layer.digest.slice(0, 2)}/${layer.digest}/layerfs/victim.txt`])).stdout);
    const hex = String(stat.contentHash);
    const object = join(dir, 'repo', 'storage', 'data', hex.slice(0, 2), hex.slice(2));
    const bytes = readFileSync(object);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(object, bytes);
    await ours.docker(['load', '-i', archive]);
    const read = await ours.docker(['run', '--rm', '--network', 'none', '-v', '/bin/busybox:/busybox:ro', 'thin/corrupt:1', '/busybox', 'cat', '/victim.txt'], { allowFail: true });
    assert.notEqual(read.code, 0);
    assert.equal(read.stdout, '', 'no bytes of the damaged object reach the container');
    assert.match(read.stderr, /Input\/output error/);
  });

  test('credentials: token auth with config.json works, a wrong password fails clearly', async () => {
    const secured = await startRegistry({ tokenAuth: { users: { alice: 'secret' }, anonymousPull: false } });
    try {
      await pushTestImageTo(secured, 'test/private:1', buildTestImage({ layers: [{ 'private.txt': 'for alice only\n' }] }));
      const config = async (password: string) => {
        const configDir = join(dir, `docker-config-${password}`);
        await mkdir(configDir, { recursive: true });
        writeFileSync(join(configDir, 'config.json'), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from(`alice:${password}`).toString('base64') } } }));
        return configDir;
      };
      const args = ['make-thin', '-i', `${secured.host}/test/private:1`, '-o', 'thin/private:1', '-r', join(dir, 'repo'), '--output-file', join(dir, 'private.tar')];
      const good = await run(NODE, [MAIN, ...args], { env: { ...process.env, DOCKER_CONFIG: await config('secret') } });
      assert.match(good.stdout, /1 layers in thin\.test\.local/);
      const bad = await run(NODE, [MAIN, ...args], { env: { ...process.env, DOCKER_CONFIG: await config('wrong') }, allowFail: true });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, new RegExp(`${secured.host.replace('.', '\\.')}.*(credentials|denied|unauthorized)`, 'i'));
    } finally {
      await secured.stop();
    }
  });

  test('an unknown tag fails clearly and publishes nothing', async () => {
    const failed = await makeThin(['-i', `${registry.host}/test/feature:nope`, '-o', 'thin/nope:1', '-r', join(dir, 'repo')], true);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /not found|unknown/i);
  });
});
