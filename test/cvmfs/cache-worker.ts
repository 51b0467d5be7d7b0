// Child process for cache.test.ts: hammers one shared cache directory from its own process.
//   objects <cacheDir> <maxBytes> <seed>       store and read back objects keyed by their sha1
//   repository <cacheDir> <maxBytes> <repoDir>  read every file of the fixture repository
// Prints one JSON line with what it checked; exits non-zero on any wrong byte.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { ObjectCache } from '../../src/core/cvmfs/cache.ts';
import { Repository } from '../../src/core/cvmfs/repository.ts';
import { FQRN, loadExpected, PUBLIC_KEY } from './fixture.ts';

const [mode, directory, maxBytesText, argument] = process.argv.slice(2);
const maxBytes = Number(maxBytesText);
const cache = await ObjectCache.open({ directory: directory!, maxBytes, accessRecordIntervalMs: 0 });
const sha1 = (data: Buffer) => createHash('sha1').update(data).digest('hex');

if (mode === 'objects') {
  // Half the objects are shared by all workers (same seed-independent content), half are own.
  let checked = 0;
  for (let round = 0; round < 60; round++) {
    const shared = round % 2 === 0;
    const content = shared ? createHash('sha512').update(`shared-${round}`).digest().toString('hex').repeat(20) : randomBytes(1500 + round).toString('hex');
    const data = Buffer.from(`${argument}:${shared ? '' : round}:${content}`);
    const key = sha1(data);
    const path = (await cache.find(key)) ?? (await cache.store(key, (temp) => writeFile(temp, data)));
    try {
      const back = await readFile(path);
      if (sha1(back) !== key) throw new Error(`object ${key} came back with other bytes`);
      checked++;
    } catch (error) {
      // Another worker may evict it between store and read; that is allowed, wrong bytes are not.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  console.log(JSON.stringify({ checked }));
} else if (mode === 'repository') {
  const expected = await loadExpected();
  const repository = await Repository.open({ fqrn: FQRN, location: { directory: argument! }, publicKeys: PUBLIC_KEY, cache });
  let checked = 0;
  for (const [path, entry] of Object.entries(expected.entries)) {
    if (entry.type !== 'file') continue;
    if (sha1(await repository.readFile(path)) !== entry.sha1) throw new Error(`${path} read back with wrong bytes`);
    checked++;
  }
  repository.close();
  console.log(JSON.stringify({ checked }));
}
cache.close();
