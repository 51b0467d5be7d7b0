// Threads that read requests from /dev/fuse. A read blocks until the kernel has a request, so it
// must not run on libuv's threadpool (each pending fs.read would park one of its four threads and
// stall every other fs, zlib, crypto and dns call in the process). Each reader is a worker thread
// looping on a blocking readSync and posting every request, copied into its own transferable
// buffer, to the main thread.
import { Worker } from 'node:worker_threads';
import { log } from '../log.ts';
import { REQUEST_BUFFER_SIZE } from './protocol.ts';

// A string run with eval:true, because inside the single executable there is no file to start a
// worker from. CommonJS require, since the bundle and eval'd workers are CommonJS.
// EINTR: a signal; EAGAIN: spurious wakeup; ENOENT: the kernel dropped the request it was about
// to hand over (interrupted). ENODEV: the mount is gone, which ends the session.
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { fd, bufferSize } = workerData;
const buffer = Buffer.allocUnsafeSlow(bufferSize);
for (;;) {
  let length;
  try {
    length = readSync(fd, buffer, 0, bufferSize, null);
  } catch (error) {
    if (error.code === 'EINTR' || error.code === 'EAGAIN' || error.code === 'ENOENT') continue;
    if (error.code !== 'ENODEV') parentPort.postMessage(String(error.message));
    break;
  }
  const request = new Uint8Array(length);
  request.set(buffer.subarray(0, length));
  parentPort.postMessage(request, [request.buffer]);
}
`;

/**
 * Starts `count` readers of the FUSE device `fd`; `onRequest` gets each request on the main
 * thread. Resolves when every reader has stopped, normally because the mount went away.
 */
export function readDevice(fd: number, count: number, onRequest: (request: Buffer) => void): Promise<void> {
  const exits = Array.from({ length: count }, () => {
    const worker = new Worker(READER_SOURCE, { eval: true, workerData: { fd, bufferSize: REQUEST_BUFFER_SIZE } });
    worker.on('message', (message: Uint8Array | string) => {
      if (typeof message === 'string') log.error(`fuse: reading /dev/fuse failed: ${message}`);
      else onRequest(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
    });
    worker.on('error', (error) => log.error(`fuse: device reader crashed: ${error.message}`));
    return new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  });
  return Promise.all(exits).then(() => undefined);
}
