// Which CernVM-FS client mounts each repository (serve-driver --client). The real cvmfs2 cannot
// be installed on the machines these tests run on, so an executable named cvmfs2 on PATH stands
// in for it: auto sends repositories configured in /etc/cvmfs to cvmfs2 where it is installed
// and those given by URL to the embedded client, and --client cvmfs2 refuses at start what
// cannot work.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { log } from '../../src/core/log.ts';
import { selectRepositoryClients } from '../../src/driver/client-selection.ts';
import type { RepositoryAccess, RepositorySpec } from '../../src/driver/repository-config.ts';
import { tempDir } from '../overlay/fixtures.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const ORIGINAL_PATH = process.env.PATH;
const EMBEDDED = 'the embedded CernVM-FS client';
const BY_URL: RepositorySpec = { fqrn: 'url.test.local', serverUrl: 'http://127.0.0.1:1/cvmfs/@fqrn@', key: '/dev/null' };
const BY_NAME: RepositorySpec = { fqrn: 'named.test.local' };

function access(specs: RepositorySpec[], configRoot = '/etc/cvmfs'): RepositoryAccess {
  return { specs: new Map(specs.map((spec) => [spec.fqrn, spec])), configRoot, cacheDir: '/nonexistent/cache', cacheMb: 100, passthrough: true };
}

/** A directory holding an executable `cvmfs2`, put first on PATH for the test; its path. */
async function cvmfs2OnPath(t: TestContext, mode = 0o755): Promise<string> {
  const bin = await tempDir(t, 'cvmfs2-bin-');
  const executable = path.join(bin, 'cvmfs2');
  await fs.writeFile(executable, '#!/bin/sh\nexit 1\n', { mode });
  searchPath(t, `${bin}:${ORIGINAL_PATH}`);
  return executable;
}

/** PATH for the rest of the test. */
function searchPath(t: TestContext, value: string): void {
  process.env.PATH = value;
  t.after(() => {
    process.env.PATH = ORIGINAL_PATH;
  });
}

/** What the selection logs, as one text. */
function captureLog(t: TestContext): () => string {
  const lines: string[] = [];
  const reporter = { log: (entry: { args: unknown[] }) => void lines.push(entry.args.join(' ')) };
  log.addReporter(reporter);
  t.after(() => void log.removeReporter(reporter));
  return () => lines.join('\n');
}

test('auto: cvmfs2 where installed for repositories configured in /etc/cvmfs, the embedded client for those given by URL', async (t) => {
  const cvmfs2 = await cvmfs2OnPath(t);
  const logged = captureLog(t);
  const mounter = selectRepositoryClients('auto', access([BY_URL, BY_NAME]), '/nonexistent/logs');
  assert.equal(mounter.clientName(BY_NAME.fqrn), `cvmfs2 (${cvmfs2})`);
  assert.equal(mounter.rawWhiteouts(BY_NAME.fqrn), true, 'cvmfs2 shows whiteouts as stored');
  assert.equal(mounter.clientName(BY_URL.fqrn), EMBEDDED);
  assert.equal(mounter.rawWhiteouts(BY_URL.fqrn), false);
  assert.match(logged(), /configured in \/etc\/cvmfs are mounted with cvmfs2 \(.*\/cvmfs2\), those given by URL with the embedded/);

  const anyConfigured = selectRepositoryClients('auto', access([]), '/nonexistent/logs');
  assert.equal(anyConfigured.clientName('other.test.local'), `cvmfs2 (${cvmfs2})`, 'without --repository flags every repository comes from the configuration');
});

test('auto: the embedded client without cvmfs2, and for a --cvmfs-config cvmfs2 does not read', async (t) => {
  await cvmfs2OnPath(t, 0o644);
  const logged = captureLog(t);
  const withoutCvmfs2 = selectRepositoryClients('auto', access([BY_NAME]), '/nonexistent/logs');
  assert.equal(withoutCvmfs2.clientName(BY_NAME.fqrn), EMBEDDED, 'a cvmfs2 that is not executable is not installed');
  assert.match(logged(), /with the embedded CernVM-FS client \(cvmfs2 is not installed\)/);

  await cvmfs2OnPath(t);
  const otherConfig = selectRepositoryClients('auto', access([BY_NAME], '/srv/cvmfs-config'), '/nonexistent/logs');
  assert.equal(otherConfig.clientName(BY_NAME.fqrn), EMBEDDED);
  assert.equal(otherConfig.rawWhiteouts(BY_NAME.fqrn), false);
  assert.match(logged(), /--cvmfs-config \/srv\/cvmfs-config is not cvmfs2's \/etc\/cvmfs/);
});

test('--client cvmfs2 and --client embedded are obeyed; cvmfs2 fails at start where it cannot work', async (t) => {
  searchPath(t, '/usr/sbin:/usr/bin:/sbin:/bin');
  assert.throws(() => selectRepositoryClients('cvmfs2', access([BY_NAME]), '/nonexistent/logs'), /--client cvmfs2: cvmfs2 is not installed here \(not found on PATH\)/);
  assert.throws(() => selectRepositoryClients('cvmfs3', access([]), '/nonexistent/logs'), /--client cvmfs3: choose one of auto, embedded, cvmfs2/);

  const cvmfs2 = await cvmfs2OnPath(t);
  assert.equal(selectRepositoryClients('cvmfs2', access([BY_NAME]), '/nonexistent/logs').clientName(BY_NAME.fqrn), `cvmfs2 (${cvmfs2})`);
  assert.equal(selectRepositoryClients('embedded', access([BY_NAME]), '/nonexistent/logs').clientName(BY_NAME.fqrn), EMBEDDED);
  assert.throws(() => selectRepositoryClients('cvmfs2', access([BY_NAME, BY_URL]), '/nonexistent/logs'), /cvmfs2 mounts only repositories configured in \/etc\/cvmfs, but url\.test\.local is given by URL/);
  assert.throws(() => selectRepositoryClients('cvmfs2', access([BY_NAME], '/srv/cvmfs-config'), '/nonexistent/logs'), /cvmfs2 reads its configuration from \/etc\/cvmfs, so --cvmfs-config \/srv\/cvmfs-config cannot apply to it/);
});

test('serve-driver --client cvmfs2 without cvmfs2 installed exits at start saying so', async (t) => {
  const dir = await tempDir(t, 'client-flag-');
  const socket = path.join(dir, 'driver.sock');
  const result = spawnSync(process.execPath, [MAIN, 'serve-driver', '--client', 'cvmfs2', '--socket', socket, '--state', path.join(dir, 'init.json')], {
    env: { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(result.status, 1, result.stdout + result.stderr);
  assert.match(result.stdout + result.stderr, /--client cvmfs2: cvmfs2 is not installed here/);
  assert.equal(await fs.stat(socket).catch(() => undefined), undefined, 'nothing was served');
});
