// Bad input: every damaged or untrusted piece gives a clear error (what failed, where) and
// never any bytes that failed verification.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { ObjectCache } from '../../src/core/cvmfs/cache.ts';
import { formatContentHash } from '../../src/core/cvmfs/hash.ts';
import { Repository, type RepositoryOptions } from '../../src/core/cvmfs/repository.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import {
  copyFixtureRepository,
  FIXTURE_CERTIFICATE_FINGERPRINT,
  fixtureManifestFields,
  flipByte,
  FQRN,
  loadExpected,
  makeTempDir,
  PUBLIC_KEY,
  removeDir,
  REPOSITORY_DIR,
  signManifest,
  signWhitelist,
  withField,
  type Expected,
} from './fixture.ts';
import { storeObject } from './repo-builder.ts';

const LAYER1 = '/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs';
const LAYER2 = '/.layers/35/3516b125702968644af593a042cd8e5c040afc8449c00d5084b7631cc2d65931/layerfs';

let workDir: string;
let expected: Expected;
let counter = 0;

before(async () => {
  workDir = await makeTempDir('verification');
  expected = await loadExpected();
});
after(() => removeDir(workDir));

/** A fresh writable copy of the fixture in its own folder. */
async function freshCopy(): Promise<string> {
  const parent = join(workDir, `copy-${counter++}`);
  return copyFixtureRepository(parent);
}

function options(directory: string, overrides: Partial<RepositoryOptions> = {}): RepositoryOptions {
  return {
    fqrn: FQRN,
    location: { directory },
    publicKeys: PUBLIC_KEY,
    cache: { directory: join(workDir, `cache-${counter++}`), maxBytes: 64 * 1024 * 1024 },
    ...overrides,
  };
}

async function assertFails(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error & { code?: string }) => {
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

describe('damaged objects', () => {
  test('a corrupted file object is refused and never enters the cache', async () => {
    const directory = await freshCopy();
    const file = `${LAYER1}/README.txt`;
    const object = expected.entries[file]!.objectPath!;
    await flipByte(join(directory, object), -3);
    const cache = await ObjectCache.open({ directory: join(workDir, `cache-${counter++}`), maxBytes: 1 << 26 });
    const repository = await Repository.open(options(directory, { cache }));
    try {
      await assertFails(repository.readFile(file), 'bad-data', new RegExp(`${object}.*(damaged|zlib)`));
      await assertFails(repository.read(file, 0, 4), 'bad-data', new RegExp(object));
      assert.equal(await cache.find(expected.entries[file]!.contentHash!), null);
      // Other files are unaffected.
      assert.equal((await repository.readFile(`${LAYER1}/deep/level2/level3/level4/leaf.txt`)).length, 16);
    } finally {
      repository.close();
      cache.close();
    }
  });

  test('an object whose bytes were swapped for another valid zlib stream fails its hash check', async () => {
    const directory = await freshCopy();
    const file = `${LAYER1}/README.txt`;
    const object = expected.entries[file]!.objectPath!;
    await writeFile(join(directory, object), await readFile(join(directory, expected.entries[`${LAYER1}/perm/exec-0755`]!.objectPath!)));
    const repository = await Repository.open(options(directory));
    try {
      await assertFails(repository.readFile(file), 'bad-data', new RegExp(`${object}: damaged, its sha1 hash is [0-9a-f]{40} but the repository references ${expected.entries[file]!.contentHash}`));
    } finally {
      repository.close();
    }
  });

  test('a truncated nested catalog fails lookups below it, not elsewhere', async () => {
    const directory = await freshCopy();
    const catalog = expected.catalogs.find((entry) => entry.mountpoint === LAYER1)!;
    await truncate(join(directory, catalog.objectPath), 1000);
    const repository = await Repository.open(options(directory));
    try {
      await assertFails(repository.lookup(`${LAYER1}/README.txt`), 'bad-data', new RegExp(catalog.objectPath));
      await assertFails(repository.readdir(LAYER1), 'bad-data', new RegExp(catalog.objectPath));
      assert.equal((await repository.lookup(`${LAYER2}/README.txt`)).size, 27);
    } finally {
      repository.close();
    }
  });

  test('a truncated root catalog makes opening fail', async () => {
    const directory = await freshCopy();
    const catalog = expected.catalogs.find((entry) => entry.mountpoint === '/')!;
    await truncate(join(directory, catalog.objectPath), 500);
    await assertFails(Repository.open(options(directory)), 'bad-data', new RegExp(`${catalog.objectPath}.*(damaged|zlib)`));
  });

  test('a catalog that matches its hash but is a cut-off database is reported as a broken catalog', async () => {
    const directory = await freshCopy();
    const root = expected.catalogs.find((entry) => entry.mountpoint === '/')!;
    const database = inflateSync(await readFile(join(directory, root.objectPath)));
    const cut = database.subarray(0, 4096 * 3);
    const hash = await storeObject(directory, cut, { suffix: 'C' });
    const fields = withField(withField(await fixtureManifestFields(), 'C', formatContentHash(hash)), 'B', String(cut.length));
    await writeFile(join(directory, '.cvmfspublished'), await signManifest(fields));
    const attempt = Repository.open(options(directory)).then(async (repository) => {
      try {
        await repository.lookup(`${LAYER2}/README.txt`);
      } finally {
        repository.close();
      }
    });
    await assertFails(attempt, 'bad-catalog', /catalog [0-9a-f]{40} \(mounted at \/\) cannot be read/);
  });
});

describe('signatures and names', () => {
  test('a whitelist signed by another master key is refused', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const wrongKey = join(workDir, 'wrong.pub');
    await writeFile(wrongKey, publicKey.export({ type: 'spki', format: 'pem' }));
    await assertFails(
      Repository.open(options(REPOSITORY_DIR, { publicKeys: wrongKey })),
      'bad-whitelist',
      new RegExp(`not signed by any configured public master key \\(tried ${wrongKey}\\).*CVMFS_PUBLIC_KEY`),
    );
  });

  test('the right key is found in a multi-key file and in a ":"-separated list', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const wrong = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const bundle = join(workDir, 'bundle.pub');
    await writeFile(bundle, wrong + (await readFile(PUBLIC_KEY, 'utf8')));
    const wrongOnly = join(workDir, 'wrong-only.pub');
    await writeFile(wrongOnly, wrong);
    for (const publicKeys of [bundle, `${wrongOnly}:${PUBLIC_KEY}`]) {
      const repository = await Repository.open(options(REPOSITORY_DIR, { publicKeys }));
      repository.close();
    }
  });

  test('an expired whitelist is refused, at hour granularity', async () => {
    const directory = await freshCopy();
    await writeFile(join(directory, '.cvmfswhitelist'), await signWhitelist({ fqrn: FQRN, expires: '20200101120000' }));
    await assertFails(Repository.open(options(directory)), 'bad-whitelist', /expired at 2020-01-01 12:00:00 UTC.*re-sign/);
    // The shipped whitelist expires 2036-11-25 22:37:01 UTC.
    const at = (iso: string) => () => new Date(iso);
    await assertFails(Repository.open(options(REPOSITORY_DIR, { now: at('2036-11-25T22:05:00Z') })), 'bad-whitelist', /expired/);
    const stillValid = await Repository.open(options(REPOSITORY_DIR, { now: at('2036-11-25T21:59:59Z') }));
    stillValid.close();
  });

  test('a whitelist for another repository, or without our certificate, is refused', async () => {
    const other = await freshCopy();
    await writeFile(join(other, '.cvmfswhitelist'), await signWhitelist({ fqrn: 'other.cvmfs.test', expires: '20361125223701' }));
    await assertFails(Repository.open(options(other)), 'bad-whitelist', /is for repository "other.cvmfs.test", not "fixture.cvmfs.test"/);
    const unlisted = await freshCopy();
    await writeFile(join(unlisted, '.cvmfswhitelist'), await signWhitelist({ fqrn: FQRN, expires: '20361125223701', fingerprints: ['00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33'] }));
    await assertFails(Repository.open(options(unlisted)), 'bad-whitelist', new RegExp(`does not list the certificate ${FIXTURE_CERTIFICATE_FINGERPRINT}`));
  });

  test('a blacklisted certificate is refused', async () => {
    await assertFails(Repository.open(options(REPOSITORY_DIR, { blacklist: [FIXTURE_CERTIFICATE_FINGERPRINT] })), 'bad-whitelist', /blacklisted/);
  });

  test('a manifest for another repository name is refused', async () => {
    // The real manifest served as if it were another repository…
    await assertFails(
      Repository.open(options(REPOSITORY_DIR, { fqrn: 'other.cvmfs.test' })),
      'bad-manifest',
      /carries repository name "fixture.cvmfs.test", but repository "other.cvmfs.test" was requested/,
    );
    // …and a correctly signed manifest naming another repository.
    const directory = await freshCopy();
    await writeFile(join(directory, '.cvmfspublished'), await signManifest(withField(await fixtureManifestFields(), 'N', 'other.cvmfs.test')));
    await assertFails(Repository.open(options(directory)), 'bad-manifest', /carries repository name "other.cvmfs.test"/);
  });

  test('a manifest edited after signing is refused', async () => {
    const directory = await freshCopy();
    const path = join(directory, '.cvmfspublished');
    await writeFile(path, (await readFile(path)).toString('latin1').replace('\nS2\n', '\nS3\n'), 'latin1');
    await assertFails(Repository.open(options(directory)), 'bad-manifest', /was modified after signing/);
  });

  test('a manifest signed by a key other than its certificate\'s is refused', async () => {
    const directory = await freshCopy();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await signManifest(await fixtureManifestFields(), privateKey);
    await writeFile(join(directory, '.cvmfspublished'), forged);
    await assertFails(Repository.open(options(directory)), 'bad-signature', /is not signed by the key of its certificate/);
  });

  test('an older revision than the cache has seen is refused', async () => {
    const cache = join(workDir, `cache-${counter++}`);
    const current = await Repository.open(options(REPOSITORY_DIR, { cache: { directory: cache, maxBytes: 1 << 26 } }));
    current.close();
    const directory = await freshCopy();
    const older = withField(withField(withField(await fixtureManifestFields(), 'S', '1'), 'C', 'ea2c166d8ad1e64b981e9d85d9732e7ebba3e1be'), 'T', '1795905000');
    await writeFile(join(directory, '.cvmfspublished'), await signManifest(older));
    await assertFails(
      Repository.open(options(directory, { cache: { directory: cache, maxBytes: 1 << 26 } })),
      'outdated',
      /serves revision 1 .* already seen revision 2/,
    );
    // A fresh cache accepts it: the rollback protection is per cache.
    const fresh = await Repository.open(options(directory));
    assert.equal(fresh.revision, 1);
    fresh.close();
  });
});

describe('errors over HTTP', () => {
  let nginx: NginxServer;
  let damaged: string;
  before(async () => {
    damaged = await freshCopy();
    await flipByte(join(damaged, expected.entries[`${LAYER2}/README.txt`]!.objectPath!), 5);
    nginx = await startNginx({ [FQRN]: damaged });
  });
  after(() => nginx?.stop());

  test('a corrupted object from the only server names the URL and that every copy failed', async () => {
    const repository = await Repository.open(options('', { location: { serverUrls: nginx.repositoryUrl(FQRN) } }));
    try {
      const url = `${nginx.repositoryUrl(FQRN)}/${expected.entries[`${LAYER2}/README.txt`]!.objectPath}`;
      await assertFails(repository.readFile(`${LAYER2}/README.txt`), 'bad-data', new RegExp(`${url.replaceAll('.', '\\.')}.*\\n.*failed verification`, 's'));
    } finally {
      repository.close();
    }
  });
});
