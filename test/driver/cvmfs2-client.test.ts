// The driver on a host where cvmfs2 is installed: --client auto mounts the fixture repository
// (made by the real CernVM-FS tools, served by nginx) with cvmfs2. The real cvmfs2 cannot be
// installed on the machines these tests run on, so a stand-in takes its place: a `cvmfs2` script
// first on PATH that, given `-o OPTIONS FQRN TARGET`, mounts the repository with this project's
// own client WITHOUT --image-layers, which shows it raw as cvmfs2 does (`.wh.*` files and
// `.cvmfscatalog` markers as stored), and returns once it is mounted, leaving the server running.
// The fixture's two layers are stacked on an ordinary layer holding what layer 2 deletes and
// hides: the container must see what it sees with the embedded client.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { walkTree } from '../../src/core/fs/walk.ts';
import { isMounted } from '../../src/core/fuse/mount.ts';
import { log } from '../../src/core/log.ts';
import { selectRepositoryClients } from '../../src/driver/client-selection.ts';
import { cvmfs2Mounter } from '../../src/driver/cvmfs2-mounter.ts';
import { OverlayDriver } from '../../src/driver/overlay-driver.ts';
import type { RepositoryMounter } from '../../src/driver/repository-mounts.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { pollUntil } from '../helpers/process.ts';
import { FQRN, PUBLIC_KEY, REPOSITORY_DIR } from '../cvmfs/fixture.ts';
import { chunks, describeTree, dir, file, makeTar, removeDir } from '../overlay/fixtures.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const ORIGINAL_PATH = process.env.PATH;
const LAYERS = [
  'ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789',
  '3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931',
];
const THIN_JSON = JSON.stringify({
  version: '1.0',
  layers: LAYERS.map((digest) => ({ digest, url: `cvmfs://${FQRN}/.layers/${digest.slice(0, 2)}/${digest}/layerfs` })),
});

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The stand-in: cvmfs2's command line and behaviour, the project's client in its raw view. */
function standIn(work: string, nginx: NginxServer): string {
  return `#!/bin/sh
# Stand-in for cvmfs2, which cannot be installed here: mounts FQRN at TARGET showing it raw.
echo "$@" >> ${shellQuote(path.join(work, 'cvmfs2.args'))}
[ "$1" = -o ] && [ $# -eq 4 ] || { echo "usage: cvmfs2 -o OPTIONS FQRN TARGET" >&2; exit 2; }
${shellQuote(process.execPath)} ${shellQuote(MAIN)} mount ${shellQuote(nginx.baseUrl)}/cvmfs/"$3" "$4" --fqrn "$3" \\
  --key ${shellQuote(PUBLIC_KEY)} --cache ${shellQuote(path.join(work, 'cvmfs2-cache'))} </dev/null >/dev/null 2>&1 &
tries=0
until mountpoint -q "$4"; do
  kill -0 $! 2>/dev/null || { echo "the server of $3 exited" >&2; exit 1; }
  tries=$((tries + 1)); [ $tries -lt 300 ] || { echo "$3 was not mounted in time" >&2; exit 1; }
  sleep 0.1
done
`;
}

describe('thin layers mounted by cvmfs2 (a stand-in showing the repository raw)', () => {
  let work: string;
  let nginx: NginxServer;
  let cvmfs2: string;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'cvmfs2-client-'));
    nginx = await startNginx({ [FQRN]: REPOSITORY_DIR });
    await mkdir(path.join(work, 'bin'));
    cvmfs2 = path.join(work, 'bin', 'cvmfs2');
    await writeFile(cvmfs2, standIn(work, nginx));
    await chmod(cvmfs2, 0o755);
    process.env.PATH = `${path.join(work, 'bin')}:${ORIGINAL_PATH}`;
  });

  after(async () => {
    process.env.PATH = ORIGINAL_PATH;
    await nginx?.stop();
    await removeDir(work);
  });

  /** A container on the fixture's layers above an ordinary base layer, mounted by `mounter`. */
  async function container(t: TestContext, name: string, mounter: RepositoryMounter): Promise<{ home: string; root: string }> {
    const home = path.join(work, name, 'home');
    const driver = new OverlayDriver(path.join(work, name, 'init.json'), { mounter, idleUnmountMs: 0 }, { unmountDelayMs: 0 });
    t.after(() => driver.cleanup());
    await driver.init({ Home: home, Opts: null, UIDMaps: null, GIDMaps: null });
    await driver.create({ ID: 'base' }, 'ro');
    const base = [file('README.txt', 'base\n'), file('removed', 'deleted by layer 2\n'), dir('etc'), file('etc/old.conf', 'hidden by layer 2\n'), file('keep-me', 'kept\n')];
    await driver.applyDiff('base', '', chunks(await makeTar(base)));
    await driver.create({ ID: 'thin', Parent: 'base' }, 'ro');
    await driver.applyDiff('thin', 'base', chunks(await makeTar([file('thin.json', THIN_JSON)])));
    await driver.create({ ID: 'c1-init', Parent: 'thin' }, 'rw');
    await driver.create({ ID: 'c1', Parent: 'c1-init' }, 'rw');
    return { home, root: await driver.get({ ID: 'c1' }) };
  }

  test('auto mounts a configured repository with cvmfs2; layer 2 deletes and hides what is below it, and no marker shows', async (t) => {
    const lines: string[] = [];
    const reporter = { log: (entry: { args: unknown[] }) => void lines.push(entry.args.join(' ')) };
    log.addReporter(reporter);
    t.after(() => void log.removeReporter(reporter));
    const access = { specs: new Map(), configRoot: '/etc/cvmfs', cacheDir: path.join(work, 'unused-cache'), cacheMb: 100, passthrough: true };
    const servedBefore = (await nginx.accessLog()).length;

    const { home, root } = await container(t, 'auto', selectRepositoryClients('auto', access, path.join(work, 'logs')));
    const target = path.join(home, 'cvmfs', FQRN);
    assert.equal((await readFile(path.join(work, 'cvmfs2.args'), 'utf8')).trim(), `-o ro,fsname=cvmfs2,allow_other,grab_mountpoint ${FQRN} ${target}`);
    assert.ok(lines.includes(`mounting repository ${FQRN} at ${target} with cvmfs2 (${cvmfs2})`), lines.join('\n'));

    assert.match(await readFile(path.join(root, 'README.txt'), 'utf8'), /layer 2/i, 'the upper layer wins');
    assert.deepEqual(await readdir(path.join(root, 'etc')), ['config.ini'], 'etc is opaque in layer 2: the base layer\'s old.conf is hidden');
    assert.ok(!(await readdir(root)).includes('removed'), 'layer 2\'s .wh.removed deletes the base layer\'s removed');
    assert.equal(await readFile(path.join(root, 'keep-me'), 'utf8'), 'kept\n');
    for await (const { relPath } of walkTree(root)) {
      assert.doesNotMatch(path.basename(relPath), /^\.wh\.|^\.cvmfscatalog$|^thin\.json$/, `${relPath} shows`);
    }
    const fetched = (await nginx.accessLog()).slice(servedBefore).reduce((sum, entry) => sum + entry.bytesSent, 0);
    assert.ok(fetched < 512 * 1024, `finding the whiteouts fetched ${fetched} bytes; only catalogs should be, not the 3 MiB file`);
  });

  test('a container sees the same tree through cvmfs2 as through the embedded client', async (t) => {
    const embeddedAccess = {
      specs: new Map([[FQRN, { fqrn: FQRN, serverUrl: `${nginx.baseUrl}/cvmfs/@fqrn@`, key: PUBLIC_KEY }]]),
      configRoot: '/etc/cvmfs',
      cacheDir: path.join(work, 'embedded-cache'),
      cacheMb: 100,
      passthrough: true,
    };
    // The embedded client runs this program again as process.argv[1] says, which in a test is
    // the test file: it must run main.ts instead.
    const argv1 = process.argv[1];
    process.argv[1] = MAIN;
    t.after(() => {
      process.argv[1] = argv1;
    });
    const embedded = selectRepositoryClients('auto', embeddedAccess, path.join(work, 'logs'));
    assert.equal(embedded.rawWhiteouts(FQRN), false, 'a repository given by URL goes to the embedded client');
    const viaEmbedded = await container(t, 'embedded', embedded);
    const viaCvmfs2 = await container(t, 'cvmfs2', cvmfs2Mounter(cvmfs2, path.join(work, 'logs')));
    const expected = await describeTree(viaEmbedded.root);
    assert.ok(expected.has('perm/setuid-exec') && expected.has('etc/config.ini'), 'both layers are there');
    assert.deepEqual(await describeTree(viaCvmfs2.root), expected);
  });

  test('a repository mount that presents image layers is used as it is, even with cvmfs2 configured', async (t) => {
    // As after a restart with --client changed: the embedded client's mount is still there and
    // gets adopted; walking it for markers would find none and keep an empty pair for the layers.
    const name = 'adopted';
    const target = path.join(work, name, 'home', 'cvmfs', FQRN);
    await mkdir(target, { recursive: true });
    const server = spawn(process.execPath, [MAIN, 'mount', `${nginx.baseUrl}/cvmfs/${FQRN}`, target, '--fqrn', FQRN, '--key', PUBLIC_KEY, '--cache', path.join(work, 'adopted-cache'), '--image-layers'], { stdio: 'ignore' });
    const exited = once(server, 'exit');
    const stopServer = async () => {
      if (server.exitCode === null) server.kill();
      await exited;
    };
    let started;
    try {
      await pollUntil(() => isMounted(target), 15_000, () => `${target} was not mounted`);
      started = await container(t, name, cvmfs2Mounter(cvmfs2, path.join(work, 'logs')));
    } catch (error) {
      await stopServer();
      throw error;
    }
    // After the driver's Cleanup (hooks run in order), which unmounts the overlay above it.
    t.after(stopServer);
    const { home, root } = started;
    assert.ok(!(await readdir(root)).includes('removed'), 'layer 2 still deletes removed');
    assert.deepEqual(await readdir(path.join(root, 'etc')), ['config.ini']);
    assert.equal(await stat(path.join(home, 'cvmfs-whiteouts')).catch(() => undefined), undefined, 'no whiteout pair was made from a mount that needs none');
  });

  test('a cvmfs2 that fails is reported with its own words', async () => {
    const failing = path.join(work, 'failing', 'cvmfs2');
    await mkdir(path.dirname(failing), { recursive: true });
    await writeFile(failing, '#!/bin/sh\necho "Failed to initialize root file catalog (16 - file catalog failure)"\nexit 16\n', { mode: 0o755 });
    const target = path.join(work, 'failing', 'target');
    await mkdir(target);
    const mounter = cvmfs2Mounter(failing, path.join(work, 'failing', 'logs'));
    await assert.rejects(mounter.mount(FQRN, target), /cvmfs2 could not mount fixture\.cvmfs\.test \(exit code 16\):\nFailed to initialize root file catalog/);
  });
});
