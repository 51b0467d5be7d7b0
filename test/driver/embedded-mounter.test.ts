// The embedded client's repository mounts as the driver starts them: with FUSE passthrough by
// default, and without it when serve-driver is told so (--no-passthrough), which the mount
// process must be given.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { unmount } from '../../src/core/fuse/mount.ts';
import { embeddedMounter } from '../../src/driver/embedded-mounter.ts';
import { FQRN, PUBLIC_KEY, REPOSITORY_DIR } from '../cvmfs/fixture.ts';
import { startNginx } from '../helpers/nginx.ts';
import { processCommandLines, stopAfter } from '../helpers/process.ts';
import { tempDir } from '../overlay/fixtures.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const FILE = '.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs/README.txt';

test('the embedded client mounts with passthrough unless serve-driver turned it off', async (t) => {
  const nginx = stopAfter(t, await startNginx({ [FQRN]: REPOSITORY_DIR }));
  // The embedded client runs this program again as process.argv[1] says, which in a test is
  // the test file.
  const argv1 = process.argv[1];
  process.argv[1] = MAIN;
  t.after(() => {
    process.argv[1] = argv1;
  });
  for (const passthrough of [true, false]) {
    const dir = await tempDir(t, 'embedded-mounter-');
    const access = {
      specs: new Map([[FQRN, { fqrn: FQRN, serverUrl: `${nginx.baseUrl}/cvmfs/@fqrn@`, key: PUBLIC_KEY }]]),
      configRoot: '/nonexistent',
      cacheDir: path.join(dir, 'cache'),
      cacheMb: 100,
      passthrough,
    };
    const mounter = embeddedMounter(access, path.join(dir, 'logs'), { standby: false });
    const target = path.join(dir, 'mnt');
    await mounter.mount(FQRN, target);
    stopAfter(t, { stop: () => unmount(target) });
    const [server] = (await processCommandLines()).map(({ argv }) => argv).filter((argv) => argv.includes(target) && argv.includes('mount'));
    assert.ok(server, `a mount process for ${target}`);
    assert.equal(server.includes('--no-passthrough'), !passthrough, server.join(' '));
    assert.match(await readFile(path.join(target, FILE), 'utf8'), /layer/);
  }
});
