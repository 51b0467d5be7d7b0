// What a server that dies, hangs or exits leaves behind, and cleanupStaleMount clearing it. The
// server runs in a child process (test/fuse/serve-child.ts) so it can be killed or stopped.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupStaleMount, isMounted } from '../../src/core/fuse/mount.ts';
import { log } from '../../src/core/log.ts';
import { run, stopAfter } from '../helpers/process.ts';
import { mountForTest, mountpointFor } from './helpers.ts';
import { MemoryFilesystem } from './memory-fs.ts';

const CHILD = path.join(import.meta.dirname, 'serve-child.ts');

/** Starts serve-child.ts on `mountpoint` and waits until it is mounted. Killed after the test. */
async function serveInChild(t: TestContext, mountpoint: string): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, [CHILD, mountpoint], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  // Stopped before mountpointFor's cleanup (registered earlier), which then clears what is left.
  stopAfter(t, {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      child.kill('SIGCONT');
      await exited;
    },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!output.includes('ready\n')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`serve-child did not start: ${output}`);
    await sleep(50);
  }
  return child;
}

test('a killed server leaves "Transport endpoint is not connected"; cleanup clears it for reuse', async (t) => {
  const mountpoint = await mountpointFor(t);
  const child = await serveInChild(t, mountpoint);
  assert.equal((await run('cat', [path.join(mountpoint, 'hello.txt')])).stdout, 'hello from the child\n');

  child.kill('SIGKILL');
  await once(child, 'exit');
  const stale = await run('stat', [mountpoint], { allowFail: true });
  assert.notEqual(stale.code, 0);
  assert.match(stale.stderr, /Transport endpoint is not connected/);
  assert.equal(await isMounted(mountpoint), true);

  assert.equal(await cleanupStaleMount(mountpoint), 'cleared');
  assert.equal(await isMounted(mountpoint), false);
  assert.equal((await run('stat', ['-c', '%F', mountpoint])).stdout, 'directory\n');

  // The mountpoint takes a new server.
  const fs = new MemoryFilesystem();
  fs.file('again.txt', 'again\n');
  await mountForTest(t, fs, { mountpoint });
  assert.equal((await run('cat', [path.join(mountpoint, 'again.txt')])).stdout, 'again\n');
});

test('a stopped server hangs its callers; cleanup aborts the connection and unmounts', async (t) => {
  const mountpoint = await mountpointFor(t);
  const child = await serveInChild(t, mountpoint);
  child.kill('SIGSTOP');
  // A caller that blocks on the hung server (second.txt was never looked up, so nothing is cached).
  const caller = spawn('cat', [path.join(mountpoint, 'second.txt')], { stdio: 'ignore' });
  const callerExit = once(caller, 'exit');
  stopAfter(t, { stop: async () => void caller.kill('SIGKILL') });
  await sleep(300);
  assert.equal(caller.exitCode, null, 'the caller waits for the stopped server');

  const warnings = t.mock.method(log, 'warn', () => {});
  const started = performance.now();
  assert.equal(await cleanupStaleMount(mountpoint, 1000), 'cleared');
  assert.ok(performance.now() - started < 10_000);
  assert.equal(warnings.mock.callCount(), 1);
  assert.match(String(warnings.mock.calls[0]!.arguments[0]), /does not answer; aborting its connection/);
  assert.equal(await isMounted(mountpoint), false);
  const [code] = await Promise.race([callerExit, sleep(5000, [null])]);
  assert.ok(code !== null && code !== 0, 'the caller was released with an error');
});

test('cleanup leaves a working mount and plain directories alone, and refuses other file systems', async (t) => {
  const fs = new MemoryFilesystem();
  fs.file('alive.txt', 'alive\n');
  const server = await mountForTest(t, fs);
  assert.equal(await cleanupStaleMount(server.mountpoint), 'alive');
  assert.equal((await run('cat', [path.join(server.mountpoint, 'alive.txt')])).stdout, 'alive\n');

  const plain = await mountpointFor(t);
  assert.equal(await cleanupStaleMount(plain), 'not-mounted');

  const tmpfs = await mountpointFor(t);
  await run('mount', ['-t', 'tmpfs', 'tmpfs', tmpfs]);
  try {
    await assert.rejects(cleanupStaleMount(tmpfs), /is a tmpfs mount, not FUSE/);
  } finally {
    await run('umount', [tmpfs]);
  }
});

test('a server process that exits while mounted detaches and aborts its mount on the way out', async (t) => {
  const mountpoint = await mountpointFor(t);
  const child = await serveInChild(t, mountpoint);
  // Another process holds a file open, which keeps a merely detached connection alive.
  const holder = spawn('sh', ['-c', `exec 3< ${path.join(mountpoint, 'hello.txt')}; echo open; read line; cat <&3`], { stdio: 'pipe' });
  stopAfter(t, { stop: async () => void holder.kill('SIGKILL') });
  let held = '';
  holder.stdout.on('data', (chunk: Buffer) => (held += chunk.toString()));
  while (!held.includes('open\n')) await sleep(20);

  child.stdin.write('exit\n');
  const [code] = await Promise.race([once(child, 'exit'), sleep(10_000, [null])]);
  assert.equal(code, 0, 'the server exited (rather than waiting forever for its device readers)');
  assert.equal(await isMounted(mountpoint), false);

  holder.stdin.end('go\n');
  const [holderCode] = await once(holder, 'exit');
  assert.notEqual(holderCode, 0, 'reads through the aborted connection fail instead of hanging');
});
