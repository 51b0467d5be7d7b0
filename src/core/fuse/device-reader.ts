// The thread that reads requests from /dev/fuse. A read blocks until the kernel has a request, so
// it must not run on libuv's threadpool (each pending fs.read would park one of its four threads
// and stall every other fs, zlib, crypto and dns call in the process). The reader is a worker
// thread looping on a blocking readSync and posting every request, copied into its own
// transferable buffer, to the main thread. One is enough: it hands each request over without
// waiting for its answer, so it takes requests off the device as fast as the kernel queues them,
// and each further thread only cost ~50 ms of start-up (measured: a mount served its first
// listing after ~400 ms with one, ~550 ms with four; reads and lookups were no faster with four).
import { Worker } from 'node:worker_threads';
import { log } from '../log.ts';
import { REQUEST_BUFFER_SIZE } from './protocol.ts';

// A string run with eval:true, because inside the single executable there is no file to start a
// worker from. CommonJS require, since the bundle and eval'd workers are CommonJS. The loop starts
// on the first message; with its one-time listener gone, the thread ends when the loop does.
// EINTR: a signal; EAGAIN: spurious wakeup; ENOENT: the kernel dropped the request it was about
// to hand over (interrupted). ENODEV: the mount is gone, which ends the session.
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { fd, bufferSize } = workerData;
const buffer = Buffer.allocUnsafeSlow(bufferSize);
parentPort.once('message', () => {
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
});
`;

export interface DeviceReader {
  /**
   * Starts reading, once the device is mounted (reading an unmounted one fails). Resolves when
   * the reader has stopped, normally because the mount went away.
   */
  start(): Promise<void>;
  /** Ends a reader that was never started (the mount failed). */
  cancel(): Promise<void>;
}

/**
 * Boots the reader of the FUSE device `fd`, waiting for start(); `onRequest` gets each request on
 * the main thread. A thread takes tens of milliseconds to boot, which is best spent while the
 * device is being mounted rather than keeping the kernel's INIT waiting.
 */
export function prepareDeviceReader(fd: number, onRequest: (request: Buffer) => void): DeviceReader {
  const worker = new Worker(READER_SOURCE, { eval: true, workerData: { fd, bufferSize: REQUEST_BUFFER_SIZE } });
  worker.on('message', (message: Uint8Array | string) => {
    if (typeof message === 'string') log.error(`fuse: reading /dev/fuse failed: ${message}`);
    else onRequest(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
  });
  worker.on('error', (error) => log.error(`fuse: device reader crashed: ${error.message}`));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    start() {
      worker.postMessage('read');
      return exited;
    },
    async cancel() {
      await worker.terminate();
    },
  };
}
