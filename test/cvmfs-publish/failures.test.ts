// What must not break a repository: a publisher killed mid-ingest, a tar that tries to escape
// its base directory, a truncated tar, a second publisher, an expired whitelist, and damage
// that `repo check` has to find.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DatabaseSync } from 'node:sqlite';
import { inflateSync, deflateSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { hashBytes, objectPath } from '../../src/core/cvmfs/hash.ts';
import { parseManifest } from '../../src/core/cvmfs/manifest.ts';
import { checkRepository } from '../../src/core/cvmfs/publish/check.ts';
import { ingest } from '../../src/core/cvmfs/publish/ingest.ts';
import { acquireLock } from '../../src/core/cvmfs/publish/lock.ts';
import type { Publisher } from '../../src/core/cvmfs/publish/publisher.ts';
import { resignRepository } from '../../src/core/cvmfs/publish/resign.ts';
import { signManifest } from '../../src/core/cvmfs/publish/signing.ts';
import { makeTempDir, removeDir } from '../cvmfs/fixture.ts';
import { kill, pollUntil, run } from '../helpers/process.ts';
import { makeHeader, writeArchive } from '../tar/helpers.ts';
import { MAIN, newPublisher, NODE, objectsBySuffix, openPublished } from './helpers.ts';

let workDir: string;
let publisher: Publisher;

const publicKey = () => join(publisher.paths.keys, `${publisher.config.fqrn}.pub`);
const check = () => checkRepository({ fqrn: publisher.config.fqrn, location: { directory: publisher.paths.storage }, publicKeys: publicKey() });
const manifestBytes = () => readFile(join(publisher.paths.storage, '.cvmfspublished'));

/** The previous revision is what clients get, it reads, and it checks clean. */
async function assertUnchanged(manifest: Buffer): Promise<void> {
  assert.ok((await manifestBytes()).equals(manifest), 'the manifest was not touched');
  const repository = await openPublished(publisher, workDir);
  try {
    assert.equal((await repository.readFile('/base/hello.txt')).toString(), 'hello\n');
  } finally {
    repository.close();
  }
  await check();
}

before(async () => {
  workDir = await makeTempDir('publish-failures');
  publisher = await newPublisher(workDir);
  const tar = await writeArchive([[makeHeader({ path: 'hello.txt', size: 6 }), Buffer.from('hello\n')]]);
  await ingest(publisher, { tar: Readable.from([tar]), baseDir: '/base', createCatalog: true });
});

after(() => removeDir(workDir));

describe('bad input and interrupted publishes', () => {
  test('a publisher killed in the middle of an ingest leaves the previous revision, and the next publish takes over its lock', async () => {
    const manifest = await manifestBytes();
    const files = Array.from({ length: 48 }, (_, index) => [makeHeader({ path: `file-${index}.bin`, size: 1 << 20 }), randomBytes(1 << 20)] as const);
    const tar = await writeArchive(files);
    const child = spawn(NODE, [MAIN, 'repo', 'ingest', publisher.paths.root, '--tar', '-', '--base-dir', '/big'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      const objectsBefore = (await objectsBySuffix(publisher.paths.storage)).get('')!.size;
      child.stdin.on('error', () => {});
      child.stdin.write(tar.subarray(0, tar.length / 2));
      await pollUntil(async () => ((await objectsBySuffix(publisher.paths.storage)).get('')?.size ?? 0) >= objectsBefore + 5, 30_000, () => 'the ingest wrote no objects');
      assert.ok(existsSync(publisher.paths.lock), 'the child holds the lock');
    } finally {
      await kill(child);
    }
    await assertUnchanged(manifest);
    const tar2 = await writeArchive([[makeHeader({ path: 'after.txt', size: 6 }), Buffer.from('after\n')]]);
    const result = await ingest(publisher, { tar: Readable.from([tar2]), baseDir: '/after' });
    assert.equal(result.revision, parseManifest(manifest, 'old').revision + 1);
    assert.equal(existsSync(publisher.paths.txn), false, 'the killed publish\'s work files are gone');
    await check();
  });

  test('a tar entry that climbs out of the base directory is refused and nothing is published', async () => {
    const manifest = await manifestBytes();
    const tar = await writeArchive([
      [makeHeader({ path: 'fine.txt', size: 5 }), Buffer.from('fine\n')],
      [makeHeader({ path: '../../etc/passwd', size: 5 }), Buffer.from('evil\n')],
    ]);
    await assert.rejects(ingest(publisher, { tar: Readable.from([tar]), baseDir: '/escape' }), /points outside the layer: it would escape the base directory \/escape; nothing was published/);
    await assertUnchanged(manifest);
    assert.equal(existsSync(publisher.paths.lock), false, 'the lock was released');
  });

  test('a truncated tar is refused and nothing is published', async () => {
    const manifest = await manifestBytes();
    const tar = await writeArchive([
      [makeHeader({ path: 'one.txt', size: 4 }), Buffer.from('one\n')],
      [makeHeader({ path: 'two.bin', size: 100_000 }), randomBytes(100_000)],
    ]);
    await assert.rejects(ingest(publisher, { tar: Readable.from([tar.subarray(0, 50_000)]), baseDir: '/truncated' }), /truncated/);
    await assertUnchanged(manifest);
  });

  test('an entry below a symlink is refused', async () => {
    const manifest = await manifestBytes();
    const tar = await writeArchive([
      [makeHeader({ path: 'link', type: 'symlink', linkname: '/etc' })],
      [makeHeader({ path: 'link/passwd', size: 5 }), Buffer.from('evil\n')],
    ]);
    await assert.rejects(ingest(publisher, { tar: Readable.from([tar]), baseDir: '/symlinked' }), /\/symlinked\/link is not a directory in the repository/);
    await assertUnchanged(manifest);
  });

  test('a second publisher is turned away with the pid of the one holding the lock', async () => {
    const lock = await acquireLock(publisher.paths.lock, 'test holding the lock');
    try {
      const result = await run(NODE, [MAIN, 'repo', 'ingest', publisher.paths.root, '--delete', '/base/hello.txt'], { allowFail: true });
      assert.equal(result.code, 1);
      assert.match(result.stderr + result.stdout, new RegExp(`another publisher holds ${publisher.paths.lock}: pid ${process.pid} \\(\\d+ test holding the lock`));
    } finally {
      await lock.release();
    }
  });
});

describe('whitelist expiry', () => {
  test('a repository whose whitelist expired is refused until resign renews it', async () => {
    const dir = await makeTempDir('publish-expired');
    try {
      const longAgo = new Date(Date.now() - 40 * 24 * 3600 * 1000);
      const expired = await newPublisher(dir, { now: longAgo, whitelistDays: 30 });
      await assert.rejects(openPublished(expired, dir), /whitelist .* expired at .*; the repository owner must re-sign it/);
      const manifest = await readFile(join(expired.paths.storage, '.cvmfspublished'));
      const { expires } = await resignRepository(expired, { days: 7 });
      assert.ok(expires.getTime() > Date.now() + 6 * 24 * 3600 * 1000);
      assert.ok((await readFile(join(expired.paths.storage, '.cvmfspublished'))).subarray(0, 200).equals(manifest.subarray(0, 200)), 'same manifest text');
      const repository = await openPublished(expired, dir);
      assert.equal(repository.revision, 0);
      repository.close();
    } finally {
      await removeDir(dir);
    }
  });
});

describe('repo check finds damage', () => {
  test('a damaged data object, a wrong counter and a wrong link count are each named', async () => {
    const dir = await makeTempDir('publish-damage');
    try {
      const damaged = await newPublisher(dir);
      const tar = await writeArchive([
        [makeHeader({ path: 'sub/', type: 'directory' })],
        [makeHeader({ path: 'sub/data.txt', size: 5 }), Buffer.from('data\n')],
      ]);
      await ingest(damaged, { tar: Readable.from([tar]), baseDir: '/x' });
      const options = { fqrn: damaged.config.fqrn, location: { directory: damaged.paths.storage }, publicKeys: join(damaged.paths.keys, `${damaged.config.fqrn}.pub`) };
      await checkRepository(options);
      const object = join(damaged.paths.storage, objectPath(hashBytes('sha1', deflateSync(Buffer.from('data\n'))), ''));
      const original = await readFile(object);
      await writeFile(object, deflateSync(Buffer.from('DATA\n')));
      await assert.rejects(checkRepository(options), /\/x\/sub\/data.txt: object data\/.* hashes to/);
      await writeFile(object, original);

      // Re-seal a changed root catalog under a new name and point a re-signed manifest at it.
      const manifest = parseManifest(await readFile(join(damaged.paths.storage, '.cvmfspublished')), 'current');
      const catalogFile = join(dir, 'root.db');
      await writeFile(catalogFile, inflateSync(await readFile(join(damaged.paths.storage, objectPath(manifest.rootCatalog, 'C')))));
      const tamper = async (sql: string) => {
        const database = new DatabaseSync(catalogFile);
        database.exec(sql);
        database.close();
        const compressed = deflateSync(await readFile(catalogFile));
        const hash = hashBytes('sha1', compressed);
        await writeFile(join(damaged.paths.storage, objectPath(hash, 'C')), compressed);
        const signed = signManifest(
          { rootCatalog: hash, rootCatalogSize: (await readFile(catalogFile)).length, ttlSeconds: 240, revision: manifest.revision, garbageCollectable: false, fqrn: damaged.config.fqrn, certificate: manifest.certificate!, history: null, publishedAt: manifest.publishedAt, metaInfo: null, reflog: null },
          damaged.keys.releaseKey,
        );
        await writeFile(join(damaged.paths.storage, '.cvmfspublished'), signed);
      };
      await tamper("UPDATE statistics SET value = value + 1 WHERE counter = 'self_regular'");
      await assert.rejects(checkRepository(options), /statistics counter self_regular is 2, the entries give 1/);
      await tamper("UPDATE statistics SET value = value - 1 WHERE counter = 'self_regular'; UPDATE catalog SET hardlinks = 7 WHERE name = 'sub'");
      await assert.rejects(checkRepository(options), /\/x\/sub has link count 7, expected 2/);
    } finally {
      await removeDir(dir);
    }
  });
});
