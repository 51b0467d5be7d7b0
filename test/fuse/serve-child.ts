// A FUSE server in its own process, for tests that kill or stop it. Serves a small tree at
// argv[2], prints "ready" once mounted, and exits (still mounted) when a line arrives on stdin.
import { serveFilesystem } from '../../src/core/fuse/server.ts';
import { MemoryFilesystem } from './memory-fs.ts';

const fs = new MemoryFilesystem();
fs.file('hello.txt', 'hello from the child\n');
fs.file('second.txt', 'second file\n');
await serveFilesystem(fs, process.argv[2]!);
process.stdout.write('ready\n');
process.stdin.once('data', () => process.exit(0));
