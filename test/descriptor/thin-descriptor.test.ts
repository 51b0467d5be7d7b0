import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatThinDescriptor, MAX_THIN_LAYERS, parseCvmfsUrl, parseThinDescriptor, ThinDescriptorError } from '../../src/core/thin-descriptor.ts';

const DIGEST = 'ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789';
const URL = `cvmfs://unpacked.cern.ch/.layers/ea/${DIGEST}/layerfs`;

test('reads what docker2cvmfs and DUCC write', () => {
  const written = JSON.stringify({ version: '1.0', origin: 'library/redis:4@https://registry-1.docker.io/v2', layers: [{ digest: DIGEST, url: URL }] }, null, 2);
  assert.deepEqual(parseThinDescriptor(written), { version: '1.0', origin: 'library/redis:4@https://registry-1.docker.io/v2', layers: [{ digest: DIGEST, url: URL }] });
  assert.deepEqual(parseCvmfsUrl(URL), { repository: 'unpacked.cern.ch', path: `.layers/ea/${DIGEST}/layerfs` });
});

test('ignores fields it does not know, as the upstream readers do, and accepts a thin scratch image', () => {
  const parsed = parseThinDescriptor(JSON.stringify({ version: '1.0', layers: [], comment: 'x', min_version: '1.0' }));
  assert.deepEqual(parsed, { version: '1.0', layers: [] });
});

test('formats with two-space indent and reads back', () => {
  const descriptor = { version: '1.0', origin: 'o', layers: [{ digest: DIGEST, url: URL }] };
  const text = formatThinDescriptor(descriptor);
  assert.match(text, /^\{\n {2}"version": "1.0",\n {2}"origin": "o",\n {2}"layers": \[/);
  assert.deepEqual(parseThinDescriptor(text), descriptor);
});

const BAD: Array<[string, unknown, RegExp]> = [
  ['malformed JSON', '{"version": "1.0", "layers": [', /not valid JSON/],
  ['an array', [], /JSON object/],
  ['the legacy 0.1 format', { version: '0.1', layers: [] }, /version "0.1" is not supported/],
  ['no layers', { version: '1.0' }, /"layers" array/],
  ['a prefixed digest', { version: '1.0', layers: [{ digest: `sha256:${DIGEST}`, url: URL }] }, /layer 0: "digest" must be 64/],
  ['an uppercase digest', { version: '1.0', layers: [{ digest: DIGEST.toUpperCase(), url: URL }] }, /64 lowercase hex/],
  ['another scheme', { version: '1.0', layers: [{ digest: DIGEST, url: 'http://x.cern.ch/a' }] }, /must start with cvmfs:\/\//],
  ['a bare repository', { version: '1.0', layers: [{ digest: DIGEST, url: 'cvmfs://unpacked.cern.ch' }] }, /no path inside/],
  ['a dotless repository', { version: '1.0', layers: [{ digest: DIGEST, url: 'cvmfs://localhost/a' }] }, /not a fully qualified name/],
  ['.. in the path', { version: '1.0', layers: [{ digest: DIGEST, url: 'cvmfs://a.b/x/../../etc' }] }, /"\.\." path component/],
  ['an absolute trick', { version: '1.0', layers: [{ digest: DIGEST, url: 'cvmfs://a.b//etc' }] }, /empty/],
  ['a newline', { version: '1.0', layers: [{ digest: DIGEST, url: 'cvmfs://a.b/x\ny' }] }, /control characters/],
  ['too many layers', { version: '1.0', layers: Array.from({ length: MAX_THIN_LAYERS + 1 }, () => ({ digest: DIGEST, url: URL })) }, /at most 125/],
];

for (const [what, value, message] of BAD) {
  test(`refuses ${what} with a message saying what is wrong`, () => {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    assert.throws(() => parseThinDescriptor(text), (err: unknown) => err instanceof ThinDescriptorError && message.test(err.message));
  });
}

test('refuses an oversized file before parsing it', () => {
  assert.throws(() => parseThinDescriptor(Buffer.alloc(2 * 1024 * 1024, 0x20)), /more than the 1048576 allowed/);
});
