// Byte-level pieces against the vectors in the format notes and hand-made inputs.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { formatContentHash, hashBytes, objectPath, parseContentHash } from '../../src/core/cvmfs/hash.ts';
import { parseManifest } from '../../src/core/cvmfs/manifest.ts';
import { normalizeRepositoryPath, parentPath, pathHash } from '../../src/core/cvmfs/path-hash.ts';
import { expandServerUrls, parseProxyGroups } from '../../src/core/cvmfs/server-list.ts';
import { parsePublicKeys } from '../../src/core/cvmfs/signature.ts';
import { expandVariantSymlink } from '../../src/core/cvmfs/variant-symlink.ts';
import { formatFingerprint, parseFingerprint, parseWhitelist } from '../../src/core/cvmfs/whitelist.ts';
import { parseXattrs } from '../../src/core/cvmfs/xattr.ts';
import { FIXTURE_CERTIFICATE_FINGERPRINT, REPOSITORY_DIR } from './fixture.ts';

describe('hashes', () => {
  test('path hashes match the documented vectors', () => {
    assert.deepEqual(pathHash(''), [338333539836370388n, 9098107892288553193n]);
    assert.deepEqual(pathHash('/foo'), [5745132282796244766n, -5819618580357280866n]);
    assert.deepEqual(pathHash('/layers'), [2447570825739551505n, 2497511331617676511n]);
  });

  test('content hashes of the documented vectors, per algorithm', () => {
    assert.equal(formatContentHash(hashBytes('sha1', Buffer.from('789c030000000001', 'hex'))), 'e8ec3d88b62ebf526e4e5a4ff6162a3aa48a6b78');
    assert.equal(formatContentHash(hashBytes('shake128', Buffer.alloc(0))), '7f9c2ba4e88f827d616045507605853ed73b8093-shake128');
    assert.equal(formatContentHash(hashBytes('rmd160', Buffer.alloc(0))), '9c1185a5c5e9fc54612808977ee8f548b2258d31-rmd160');
  });

  test('hash strings parse by length and id, and name object paths', () => {
    assert.deepEqual(parseContentHash('5798f7f4ca7585d850eea64610a1f73d8f8de7a3'), { algorithm: 'sha1', hex: '5798f7f4ca7585d850eea64610a1f73d8f8de7a3' });
    const rmd = parseContentHash('abcdef0123456789abcdef0123456789abcdef01-rmd160');
    assert.equal(rmd.algorithm, 'rmd160');
    assert.equal(objectPath(rmd, 'C'), 'data/ab/cdef0123456789abcdef0123456789abcdef01-rmd160C');
    assert.equal(objectPath(parseContentHash('5798f7f4ca7585d850eea64610a1f73d8f8de7a3'), ''), 'data/57/98f7f4ca7585d850eea64610a1f73d8f8de7a3');
    for (const bad of ['', '5798F7F4CA7585D850EEA64610A1F73D8F8DE7A3', 'd41d8cd98f00b204e9800998ecf8427e', '5798f7f4ca7585d850eea64610a1f73d8f8de7a3-md5']) {
      assert.throws(() => parseContentHash(bad), { code: 'bad-data' }, bad);
    }
  });
});

describe('paths', () => {
  test('caller paths become catalog paths', () => {
    assert.equal(normalizeRepositoryPath('/'), '');
    assert.equal(normalizeRepositoryPath(''), '');
    assert.equal(normalizeRepositoryPath('a//b/./c/'), '/a/b/c');
    assert.equal(normalizeRepositoryPath('/a/b/../c'), '/a/c');
    assert.equal(parentPath('/a/b'), '/a');
    assert.equal(parentPath('/a'), '');
  });
});

describe('signed files', () => {
  test('the fixture manifest parses into its fields', async () => {
    const manifest = parseManifest(await readFile(join(REPOSITORY_DIR, '.cvmfspublished')), 'fixture');
    assert.equal(manifest.revision, 2);
    assert.equal(manifest.ttlSeconds, 240);
    assert.equal(manifest.publishedAt, 1795905422);
    assert.equal(formatContentHash(manifest.rootCatalog), '0a27c338542cc7af250a3dbe579a04545b8684db');
    assert.equal(manifest.letter.hashLine, 'f70cc68c78e1102f5e059baa4cd771a80a1dfb58');
    assert.equal(manifest.letter.signature.length, 256);
  });

  test('a manifest without the separator or a required field is refused', () => {
    assert.throws(() => parseManifest(Buffer.from('Cabc\n'), 'm'), { code: 'bad-manifest', message: /no "--" line/ });
    const text = 'Rd41d8cd98f00b204e9800998ecf8427e\nD240\nS1\n';
    const hashLine = formatContentHash(hashBytes('sha1', Buffer.from(text)));
    assert.throws(() => parseManifest(Buffer.from(`${text}--\n${hashLine}\nsig`), 'm'), { code: 'bad-manifest', message: /lacks the required field C/ });
  });

  test('the fixture whitelist parses; fingerprints round-trip', async () => {
    const whitelist = parseWhitelist(await readFile(join(REPOSITORY_DIR, '.cvmfswhitelist')), 'fixture');
    assert.equal(whitelist.expires, '20361125223701');
    assert.equal(whitelist.fqrn, 'fixture.cvmfs.test');
    assert.deepEqual(whitelist.fingerprints.map(formatFingerprint), [FIXTURE_CERTIFICATE_FINGERPRINT]);
    assert.deepEqual(parseFingerprint(`${FIXTURE_CERTIFICATE_FINGERPRINT} # release manager`), whitelist.fingerprints[0]);
    assert.equal(parseFingerprint('# a comment'), null);
    assert.equal(formatFingerprint(parseFingerprint('AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01-RMD160')!), 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01-RMD160');
  });

  test('a key file without a public key is refused', () => {
    assert.throws(() => parsePublicKeys('nothing here', 'empty.pub'), { code: 'config', message: /empty.pub holds no "BEGIN PUBLIC KEY" block/ });
  });
});

describe('catalog values', () => {
  test('xattr blobs decode, damaged ones are refused', () => {
    const xattrs = parseXattrs(Buffer.from('01010601757365722e6131', 'hex'), '/f');
    assert.deepEqual([...xattrs], [['user.a', Buffer.from('1')]]);
    assert.throws(() => parseXattrs(Buffer.from('0200', 'hex'), '/f'), { code: 'bad-catalog', message: /version 2/ });
    assert.throws(() => parseXattrs(Buffer.from('0101067573', 'hex'), '/f'), { code: 'bad-catalog', message: /cut off/ });
  });

  test('variant symlinks expand like the client', () => {
    const environment = { ARCH: 'x86_64', EMPTY: '' };
    assert.equal(expandVariantSymlink('/opt/$(ARCH)/lib', environment), '/opt/x86_64/lib');
    assert.equal(expandVariantSymlink('/opt/$(OS:-linux)/$(ARCH:-any)', environment), '/opt/linux/x86_64');
    assert.equal(expandVariantSymlink('/opt/$(UNSET)/x', environment), '/opt//x');
    assert.equal(expandVariantSymlink('/opt/$(EMPTY:-default)', environment), '/opt/');
    assert.equal(expandVariantSymlink('/opt/$(ARCH', environment), '/opt/$(ARCH');
    assert.equal(expandVariantSymlink('plain/target', environment), 'plain/target');
  });
});

describe('server and proxy lists', () => {
  test('CVMFS_SERVER_URL expands @fqrn@ and @org@ and keeps the order', () => {
    const urls = expandServerUrls('http://s1.example/cvmfs/@fqrn@; http://s2.example/@org@/@fqrn@/ ;', 'atlas.cern.ch');
    assert.deepEqual(urls.map((url) => url.href), ['http://s1.example/cvmfs/atlas.cern.ch', 'http://s2.example/atlas/atlas.cern.ch']);
    assert.throws(() => expandServerUrls('', 'a.b'), { code: 'config' });
    assert.throws(() => expandServerUrls('ftp://x/cvmfs/@fqrn@', 'a.b'), { code: 'config' });
  });

  test('CVMFS_HTTP_PROXY groups by ";" and load-balances by "|"', () => {
    const groups = parseProxyGroups('http://p1:3128|p2:3128; DIRECT');
    assert.deepEqual(groups.map((group) => group.map((proxy) => proxy?.href ?? 'DIRECT')), [['http://p1:3128/', 'http://p2:3128/'], ['DIRECT']]);
    assert.deepEqual(parseProxyGroups(undefined), [[null]]);
    assert.deepEqual(parseProxyGroups(''), [[null]]);
    assert.throws(() => parseProxyGroups('auto'), { code: 'unsupported' });
  });
});
