// Storage options (dockerd's --storage-opt, daemon.json "storage-opts") as Init hands them over.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDriverOptions } from '../../src/driver/options.ts';

test('cvmfs.repository options configure repositories, by name or by URL with a key', () => {
  const { repositories } = parseDriverOptions([
    'overlay2.override_kernel_check=true',
    'cvmfs.repository=unpacked.cern.ch',
    'CVMFS.Repository = images.example.org=http://cvmfs.example.org/cvmfs/@fqrn@,key=/etc/images.pub',
  ]);
  assert.deepEqual(repositories, [
    { fqrn: 'unpacked.cern.ch' },
    { fqrn: 'images.example.org', serverUrl: 'http://cvmfs.example.org/cvmfs/@fqrn@', key: '/etc/images.pub' },
  ]);
  assert.deepEqual(parseDriverOptions(null), { repositories: [] });
});

test('a bad repository option says which option and what is expected', () => {
  assert.throws(() => parseDriverOptions(['cvmfs.repository=images.example.org=http://x/cvmfs/@fqrn@']), {
    message: 'storage option cvmfs.repository "images.example.org=http://x/cvmfs/@fqrn@": a repository given by URL needs its public key: add ,key=/path/to/images.example.org.pub',
  });
  assert.throws(() => parseDriverOptions(['cvmfs.repository=Not A Name']), /storage option cvmfs\.repository "Not A Name": "Not A Name" is not a repository name/);
  assert.throws(() => parseDriverOptions(['overlay2.override_kernel_check=maybe']), /expected true or false/);
  assert.throws(() => parseDriverOptions(['cvmfs.repositories=x.y']), /unknown storage option "cvmfs\.repositories"; known options: overlay2\.override_kernel_check, cvmfs\.repository \(repeatable\)/);
});
