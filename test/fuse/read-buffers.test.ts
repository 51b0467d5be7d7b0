import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReadBuffers } from '../../src/core/fuse/read-buffers.ts';

test('a buffer given back is taken again, up to the number kept', () => {
  const buffers = new ReadBuffers(1024, 2);
  const [a, b, c] = [buffers.take(10), buffers.take(1024), buffers.take(512)];
  assert.deepEqual([a.length, b.length, c.length], [1024, 1024, 1024], 'every buffer has room for the largest READ');
  for (const buffer of [a, b, c]) buffers.give(buffer);
  const again = [buffers.take(1), buffers.take(1), buffers.take(1)];
  assert.deepEqual(again.slice(0, 2), [b, a], 'the most recently used first');
  assert.ok(again[2] !== c, 'the third was not kept');
});

test('a READ bigger than the buffers gets one of its own, which is not kept', () => {
  const buffers = new ReadBuffers(1024, 2);
  const big = buffers.take(4096);
  assert.equal(big.length, 4096);
  buffers.give(big);
  assert.equal(buffers.take(4096) === big, false);
  assert.equal(buffers.take(100).length, 1024);
});

test('prefault fills the buffers kept, each written (with zeros) and handed out before any new one', () => {
  const buffers = new ReadBuffers(4096, 3);
  buffers.prefault();
  const taken = [buffers.take(4096), buffers.take(4096), buffers.take(4096)];
  for (const buffer of taken) assert.ok(buffer.equals(Buffer.alloc(4096)));
  for (const buffer of taken) buffers.give(buffer);
  buffers.prefault();
  const again = [buffers.take(1), buffers.take(1), buffers.take(1), buffers.take(1)];
  assert.ok(again.slice(0, 3).every((buffer) => taken.includes(buffer)), 'the same three come back');
  assert.ok(!taken.includes(again[3]!), 'nothing was added past the number kept');
});
