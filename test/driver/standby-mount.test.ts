// The mount process the embedded client keeps ready: it takes one order from its driver and
// serves that mount (logging to the repository's log, outliving the driver), and exits when its
// driver goes away without one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isMounted, unmount } from '../../src/core/fuse/mount.ts';
import { readMountOrder, startStandbyMount } from '../../src/driver/standby-mount.ts';
import { FQRN, makeTempDir, PUBLIC_KEY, removeDir, REPOSITORY_DIR } from '../cvmfs/fixture.ts';
import { startNginx } from '../helpers/nginx.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const STANDBY_MODULE = fileURLToPath(new URL('../../src/driver/standby-mount.ts', import.meta.url));

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, condition: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(20);
  }
}

test('an order is one JSON line of mount arguments and a log file; no line means no mount', async () => {
  assert.deepEqual(await readMountOrder(Readable.from(['{"args":["http://s/cvmfs/r",', '"/mnt"],"logFile":"/l"}\n', 'ignored'])), { args: ['http://s/cvmfs/r', '/mnt'], logFile: '/l' });
  assert.equal(await readMountOrder(Readable.from([])), null);
  await assert.rejects(readMountOrder(Readable.from(['{"args":"x","logFile":"/l"}\n'])), /an order is \{"args": \[\.\.\.\], "logFile": "\.\.\."\}, not \{"args":"x"/);
  await assert.rejects(readMountOrder(Readable.from(['not json\n'])), /not not json/);
});

test('a standby process serves the mount it is handed, logging to that mount\'s log', async (t) => {
  const dir = await makeTempDir('standby');
  const nginx = await startNginx({ [FQRN]: REPOSITORY_DIR });
  const mountpoint = join(dir, 'mnt');
  const standby = startStandbyMount(process.execPath, [MAIN], join(dir, 'logs'));
  let server: ReturnType<typeof standby.take> = null;
  t.after(async () => {
    if (await isMounted(mountpoint)) await unmount(mountpoint);
    // Gone already unless the test failed half-way.
    server?.kill();
    await nginx.stop();
    await removeDir(dir);
  });
  assert.ok(standby.pid !== undefined);
  const logFile = join(dir, 'logs', `${FQRN}.log`);
  server = standby.take({ args: [`${nginx.baseUrl}/cvmfs/${FQRN}`, mountpoint, '--key', PUBLIC_KEY, '--cache', join(dir, 'cache'), '--image-layers'], logFile });
  assert.ok(server !== null);
  assert.equal(standby.take({ args: [], logFile }), null, 'one order only');
  await waitFor('the mount', () => isMounted(mountpoint));
  assert.ok((await readFile(join(mountpoint, '.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs/perm/exec-0755'))).length > 0);
  await waitFor('the log line', async () => (await readFile(logFile, 'utf8')).includes(`serving ${FQRN} revision`));
  assert.equal(await readFile(join(dir, 'logs', 'standby.log'), 'utf8'), '', 'nothing left for the standby log');
  await unmount(mountpoint);
  assert.deepEqual(await server.ended, { code: 0, how: 'exit code 0' });
});

test('a standby process whose driver exits without handing it a mount exits too', async () => {
  const dir = await makeTempDir('standby-orphan');
  let pid = 0;
  try {
    // A driver in a process of its own, which starts a standby and exits.
    const script = `import { startStandbyMount } from ${JSON.stringify(STANDBY_MODULE)};
      console.log(startStandbyMount(process.execPath, [${JSON.stringify(MAIN)}], ${JSON.stringify(dir)}).pid);`;
    const driver = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    driver.stdout.on('data', (chunk: Buffer) => (output += String(chunk)));
    await new Promise((resolve) => driver.once('exit', resolve));
    pid = Number(output.trim());
    assert.ok(pid > 0, `the driver printed the standby's pid: ${output}`);
    await waitFor('the standby to exit', () => !isRunning(pid));
  } finally {
    if (pid > 0 && isRunning(pid)) process.kill(pid);
    await removeDir(dir);
  }
});
