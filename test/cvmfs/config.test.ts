// Reading a site's /etc/cvmfs (here a temp directory) and opening the repository it describes.
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadClientConfig, parseShellAssignments, repositoryOptionsFromConfig } from '../../src/core/cvmfs/config.ts';
import { Repository } from '../../src/core/cvmfs/repository.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { FQRN, makeTempDir, PUBLIC_KEY, removeDir, REPOSITORY_DIR } from './fixture.ts';

let workDir: string;
let nginx: NginxServer;

before(async () => {
  workDir = await makeTempDir('config');
  nginx = await startNginx({ [FQRN]: REPOSITORY_DIR });
});
after(async () => {
  await nginx?.stop();
  await removeDir(workDir);
});

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  }
}

describe('client configuration', () => {
  test('files override each other in the client order', async () => {
    const root = join(workDir, 'order');
    await writeTree(root, {
      'default.conf': 'CVMFS_CACHE_BASE=/var/lib/cvmfs\nCVMFS_QUOTA_LIMIT=4000\nCVMFS_TIMEOUT=5\nCVMFS_SERVER_URL=http://default/@fqrn@\n',
      'default.d/50-site.conf': 'CVMFS_QUOTA_LIMIT=1000\n',
      'default.local': 'CVMFS_HTTP_PROXY="http://squid:3128;DIRECT"\nCVMFS_CACHE_BASE=/scratch/cvmfs\n',
      'domain.d/cvmfs.test.conf': 'CVMFS_SERVER_URL="http://s1/cvmfs/@fqrn@;http://s2/cvmfs/@fqrn@"\nCVMFS_KEYS_DIR=/etc/cvmfs/keys/cvmfs.test\n',
      'domain.d/cvmfs.test.local': '# site override of the stratum-1 list\nexport CVMFS_SERVER_URL="http://local/cvmfs/@fqrn@;$CVMFS_SERVER_URL"\n',
      [`config.d/${FQRN}.conf`]: 'CVMFS_TIMEOUT_DIRECT=20   # slow link\n',
      [`config.d/${FQRN}.local`]: "CVMFS_SHARED_CACHE=no\nCVMFS_PUBLIC_KEY='/keys/a.pub:/keys/b.pub'\n",
      'config.d/other.cvmfs.test.conf': 'CVMFS_TIMEOUT=99\n',
    });
    const config = await loadClientConfig(FQRN, root);
    assert.deepEqual(config.serverUrls, ['http://local/cvmfs/@fqrn@', 'http://s1/cvmfs/@fqrn@', 'http://s2/cvmfs/@fqrn@']);
    assert.equal(config.httpProxy, 'http://squid:3128;DIRECT');
    assert.deepEqual(config.publicKeys, ['/keys/a.pub', '/keys/b.pub'], 'CVMFS_PUBLIC_KEY wins over CVMFS_KEYS_DIR');
    assert.deepEqual(config.cache, { directory: `/scratch/cvmfs/${FQRN}`, maxBytes: 1000 * 1024 * 1024 });
    assert.equal(config.proxyTimeoutMs, 5000);
    assert.equal(config.directTimeoutMs, 20000);
  });

  test('keys come from CVMFS_KEYS_DIR, else from <root>/keys', async () => {
    const root = join(workDir, 'keys');
    await writeTree(root, { 'keys/b.pub': 'x', 'keys/a.pub': 'x', 'keys/readme.txt': 'x', 'other-keys/c.pub': 'x' });
    assert.deepEqual((await loadClientConfig(FQRN, root)).publicKeys, [join(root, 'keys/a.pub'), join(root, 'keys/b.pub')]);
    await writeTree(root, { 'default.local': `CVMFS_KEYS_DIR=${join(root, 'other-keys')}\n` });
    assert.deepEqual((await loadClientConfig(FQRN, root)).publicKeys, [join(root, 'other-keys/c.pub')]);
  });

  test('defaults when nothing is configured', async () => {
    const config = await loadClientConfig(FQRN, join(workDir, 'empty'));
    assert.deepEqual(config.serverUrls, []);
    assert.equal(config.httpProxy, undefined);
    assert.deepEqual(config.cache, { directory: '/var/lib/cvmfs/shared', maxBytes: 4000 * 1024 * 1024 });
    assert.throws(() => repositoryOptionsFromConfig(config), { code: 'config', message: /no CVMFS_SERVER_URL/ });
  });

  test('lines that are not simple assignments are refused with file and line', () => {
    assert.throws(() => parseShellAssignments('A=1\nif true; then B=2; fi\n', {}, 'site.conf'), { code: 'config', message: /site.conf:2/ });
    assert.throws(() => parseShellAssignments('A="unterminated\n', {}, 'site.conf'), { code: 'config', message: /unterminated double quote/ });
    const settings: Record<string, string> = {};
    parseShellAssignments("A=one\nB=\"${A}-two\"\nC='$A'\nD=x$A\n", settings, 'f');
    assert.deepEqual(settings, { A: 'one', B: 'one-two', C: '$A', D: 'xone' });
  });

  test('a configuration opens the repository it describes', async () => {
    const root = join(workDir, 'site');
    await mkdir(join(root, 'keys'), { recursive: true });
    await copyFile(PUBLIC_KEY, join(root, 'keys', `${FQRN}.pub`));
    await writeTree(root, {
      'default.local': `CVMFS_CACHE_BASE=${join(workDir, 'site-cache')}\nCVMFS_QUOTA_LIMIT=100\nCVMFS_HTTP_PROXY=DIRECT\n`,
      'domain.d/cvmfs.test.conf': `CVMFS_SERVER_URL="http://127.0.0.1:1/cvmfs/@fqrn@;${nginx.baseUrl}/cvmfs/@fqrn@"\n`,
    });
    const repository = await Repository.open(repositoryOptionsFromConfig(await loadClientConfig(FQRN, root)));
    try {
      assert.equal(repository.revision, 2);
      assert.equal((await repository.readdir('/.layers')).length, 2);
    } finally {
      repository.close();
    }
  });
});
