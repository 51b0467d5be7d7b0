// The `repo` subcommands end to end, as a user runs them: a repository made, filled from a
// file and from stdin, listed, read and checked from its directory and over HTTP (nginx),
// with each content hash algorithm.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, makeTempDir, removeDir } from '../cvmfs/fixture.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { run } from '../helpers/process.ts';
import { MAIN, NODE } from './helpers.ts';

const repo = (...args: string[]) => run(NODE, [MAIN, 'repo', ...args]);

let workDir: string;
let nginx: NginxServer | undefined;

before(async () => {
  workDir = await makeTempDir('publish-cli');
});

after(async () => {
  await nginx?.stop();
  await removeDir(workDir);
});

describe('repo subcommands', () => {
  for (const hash of ['sha1', 'rmd160', 'shake128']) {
    test(`init, ingest, ls, cat, stat and check with ${hash}`, async () => {
      const dir = join(workDir, hash);
      const fqrn = `${hash}.cvmfs.test`;
      const init = await repo('init', dir, '--name', fqrn, '--hash', hash);
      assert.match(init.stdout, new RegExp(`public master key for clients \\(CVMFS_PUBLIC_KEY\\): ${join(dir, 'keys', `${fqrn}.pub`)}`));
      assert.match(init.stdout, new RegExp(`serve this directory as http://<host>/cvmfs/${fqrn.replaceAll('.', '\\.')}/: ${join(dir, 'storage')}`));
      const ingested = await repo('ingest', dir, '--tar', join(FIXTURES, 'layer1.tar'), '--base-dir', '/sw/v1', '--catalog');
      assert.match(ingested.stdout, /^revision 1: root catalog [0-9a-f]{40}(-rmd160|-shake128)?, 31 tar entries \(11 files, 3145918 bytes\) below \/sw\/v1; 1[0-9] new objects/);
      const fromStdin = await run(NODE, [MAIN, 'repo', 'ingest', dir, '--tar', '-', '--base-dir', 'sw/v2/'], { input: await readFile(join(FIXTURES, 'layer2.tar')) });
      assert.match(fromStdin.stdout, /^revision 2: .* below \/sw\/v2;/);

      const listing = (await repo('ls', dir, '/sw/v1/perm')).stdout.split('\n').filter((line) => line !== '');
      assert.deepEqual(listing.map((line) => line.split(' ').at(-1)), ['exec-0755', 'owned-by-1000', 'private-0600', 'setuid-exec']);
      assert.match(listing[3]!, /^-rwsr-xr-x +1 +0 +0 +22 2023-11-14 22:14 setuid-exec$/);
      assert.equal((await repo('cat', dir, '/sw/v2/etc/config.ini')).stdout, '[main]\nkey=value\n');
      const stat = JSON.parse((await repo('stat', dir, '/sw/v1/links/rel-link')).stdout) as Record<string, unknown>;
      assert.deepEqual([stat.type, stat.symlink, stat.mode, stat.catalog], ['symlink', '../deep/level2/level3/level4/leaf.txt', '0120777', '/sw/v1']);
      assert.match((await repo('check', dir)).stdout, new RegExp(`^${fqrn.replaceAll('.', '\\.')} revision 2: no problems found \\(2 catalogs, `));
      assert.match((await repo('resign', dir, '--days', '10')).stdout, /^whitelist valid until \d{4}-/);
      const storage = join(dir, 'storage');
      assert.match((await repo('ls', storage, '/', '--fqrn', fqrn, '--key', join(dir, 'keys', `${fqrn}.pub`))).stdout, / sw\n$/);
    });
  }

  test('check, ls and cat over HTTP', async () => {
    const dir = join(workDir, 'sha1');
    const fqrn = 'sha1.cvmfs.test';
    nginx = await startNginx({ [fqrn]: join(dir, 'storage') });
    const url = nginx.repositoryUrl(fqrn);
    const key = join(dir, 'keys', `${fqrn}.pub`);
    assert.match((await repo('check', url, '--key', key)).stdout, /revision 2: no problems found/);
    assert.equal((await repo('cat', url, '/sw/v1/README.txt', '--key', key)).stdout, (await repo('cat', dir, '/sw/v1/README.txt')).stdout);
    const wrongKey = await run(NODE, [MAIN, 'repo', 'check', url, '--key', join(FIXTURES, 'fixture.cvmfs.test.pub')], { allowFail: true });
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr + wrongKey.stdout, /is not signed by any configured public master key/);
  });

  test('usage errors say what is missing', async () => {
    const missingName = await run(NODE, [MAIN, 'repo', 'init', join(workDir, 'unnamed')], { allowFail: true });
    assert.match(missingName.stderr + missingName.stdout, /repo init needs --name <fqrn>/);
    const noBase = await run(NODE, [MAIN, 'repo', 'ingest', join(workDir, 'sha1'), '--tar', join(FIXTURES, 'layer2.tar')], { allowFail: true });
    assert.match(noBase.stderr + noBase.stdout, /a tar needs a base directory \(or a layer digest\)/);
    const unknown = await run(NODE, [MAIN, 'repo', 'publish', workDir], { allowFail: true });
    assert.match(unknown.stderr + unknown.stdout, /unknown action "repo publish"; one of: init, ingest, resign, check, ls, cat, stat/);
  });
});
