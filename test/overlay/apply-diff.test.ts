// OverlayDriver.applyDiff through the layer store: a failed unpack leaves no trace, and the size
// returned is Docker's directory.Size of the diff (apparent sizes, each hardlinked inode once).

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { log } from '../../src/core/log.ts';
import { treeSize } from '../../src/core/fs/walk.ts';
import { OverlayDriver } from '../../src/driver/overlay-driver.ts';
import { refusingMounter } from '../driver/test-mounters.ts';
import { chunks, dir, entry, exists, file, hardlink, makeTar, symlink, tempDir } from './fixtures.ts';

// Expected failures would otherwise fill the output; the replies carry the messages.
log.level = -1;

async function initDriver(t: TestContext): Promise<{ driver: OverlayDriver; home: string }> {
  const base = await tempDir(t, 'apply-diff-');
  const home = path.join(base, 'home');
  const driver = new OverlayDriver(path.join(base, 'state.json'), { mounter: refusingMounter });
  await driver.init({ Home: home, Opts: null, UIDMaps: null, GIDMaps: null });
  t.after(() => driver.cleanup());
  return { driver, home };
}

async function* truncatedAfter(data: Buffer, bytes: number): AsyncGenerator<Buffer> {
  yield* chunks(data.subarray(0, bytes), 1000);
}

test('a truncated tar leaves the layer\'s diff empty and no diff.applying behind', async (t) => {
  const { driver, home } = await initDriver(t);
  await driver.create({ ID: 'base' }, 'ro');
  const archive = await makeTar([dir('etc'), file('etc/a', 'a'.repeat(5000)), file('etc/b', 'b'.repeat(5000))]);
  // Cut inside etc/b's data: the first entries are already on disk when the error comes.
  await assert.rejects(driver.applyDiff('base', '', truncatedAfter(archive, archive.length - 1024 - 2000)), (err: Error) => {
    assert.match(err.message, /base/);
    assert.match(err.message, /truncated/);
    return true;
  });
  assert.deepEqual(await fs.readdir(path.join(home, 'base', 'diff')), []);
  assert.equal(await exists(path.join(home, 'base', 'diff.applying')), false);
  // The layer can still be applied once dockerd retries.
  assert.equal(await driver.applyDiff('base', '', chunks(archive)), 10_000);
  assert.equal(await fs.readFile(path.join(home, 'base/diff/etc/b'), 'utf8'), 'b'.repeat(5000));
});

test('a corrupt header or an escaping name fails the apply and leaves nothing', async (t) => {
  const { driver, home } = await initDriver(t);
  await driver.create({ ID: 'corrupt' }, 'ro');
  const archive = await makeTar([file('one', '1'), file('two', '2'), file('three', '3')]);
  const broken = Buffer.from(archive);
  broken[1024 + 20] ^= 0xff; // the second header's name: its checksum no longer matches
  await assert.rejects(driver.applyDiff('corrupt', '', chunks(broken)), /corrupt.*checksum|checksum.*corrupt/s);
  assert.deepEqual(await fs.readdir(path.join(home, 'corrupt', 'diff')), []);
  assert.equal(await exists(path.join(home, 'corrupt', 'diff.applying')), false);

  await assert.rejects(driver.applyDiff('corrupt', '', chunks(await makeTar([file('fine', 'f'), file('../escape', 'e')]))), /corrupt.*outside the layer/);
  assert.deepEqual(await fs.readdir(path.join(home, 'corrupt', 'diff')), []);
  assert.equal(await exists(path.join(home, 'corrupt', 'diff.applying')), false);
  assert.equal(await exists(path.join(home, 'escape')), false);
  assert.equal(await exists(path.join(home, 'corrupt', 'escape')), false);
});

test('the size returned is the diff\'s apparent size with hardlinks counted once', async (t) => {
  const { driver, home } = await initDriver(t);
  await driver.create({ ID: 'sized' }, 'ro');
  const size = await driver.applyDiff('sized', '', chunks(await makeTar([
    dir('d'),
    file('d/hundred', 'x'.repeat(100)),
    hardlink('d/hundred-again', 'd/hundred'),
    hardlink('other/hundred-third', 'd/hundred'),
    file('fifty', 'y'.repeat(50)),
    file('empty', ''),
    symlink('link', 'd/hundred'), // a symlink's size is its target's length: 8
    entry({ path: 'fifo', type: 'fifo' }),
    entry({ path: '.wh.gone' }),
    entry({ path: 'd/.wh..wh..opq' }),
  ])));
  assert.equal(size, 100 + 50 + 'd/hundred'.length);
  assert.equal(size, await treeSize(path.join(home, 'sized', 'diff')));
  assert.equal(await driver.diffSize({ ID: 'sized' }), size);
});

test('applyDiff checks the parent dockerd names against the layer\'s own', async (t) => {
  const { driver } = await initDriver(t);
  await driver.create({ ID: 'p1' }, 'ro');
  await driver.create({ ID: 'c1', Parent: 'p1' }, 'ro');
  await assert.rejects(driver.applyDiff('c1', 'other', chunks(await makeTar([file('f', 'f')]))), /c1/);
  assert.equal(await driver.applyDiff('c1', 'p1', chunks(await makeTar([file('f', 'f')]))), 1);
  await assert.rejects(driver.applyDiff('c1', 'p1', chunks(await makeTar([file('g', 'g')]))), /c1.*already has content/);
});
