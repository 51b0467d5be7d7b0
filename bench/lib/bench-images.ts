// Benchmark images made of this host's real programs: a Python interpreter, a C compiler, and
// a 700+ MB image whose entry point (Python) touches a few percent of it. Each says "ready".
import { execFileSync } from 'node:child_process';
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { hostImage, type ImageArchive } from '../../test/helpers/images.ts';

export interface BenchImage {
  name: string;
  /** Builds (or finds cached) the docker-archive; the big image takes a while the first time. */
  archive: () => Promise<ImageArchive>;
  /** Command that prints "ready" once the program has started. */
  command: string[];
}

/** `file` and every symlink on the way to the file it names (the copy keeps symlinks as such). */
function withLinkTargets(file: string): string[] {
  const paths = [file];
  let current = file;
  while (lstatSync(current).isSymbolicLink()) {
    current = path.resolve(path.dirname(current), readlinkSync(current));
    paths.push(current);
  }
  return [...paths, realpathSync(current)];
}

/** The programs, and the shared libraries they load, with every symlink on the way. */
function programClosure(binaries: string[]): string[] {
  const paths = new Set(binaries.flatMap(withLinkTargets));
  for (const binary of binaries) {
    const output = execFileSync('ldd', [binary], { encoding: 'utf8' });
    for (const match of output.matchAll(/(\/\S+\.so[^\s]*)/g)) for (const file of withLinkTargets(match[1]!)) paths.add(file);
  }
  return [...paths].sort();
}

const PYTHON = '/usr/bin/python3.11';
const GCC = '/usr/bin/gcc-12';
const CC1 = '/usr/lib/gcc/x86_64-linux-gnu/12/cc1';

export function benchImages(): BenchImage[] {
  const pythonLayers = () => [programClosure([PYTHON]), ['/usr/lib/python3.11']];
  const printReady = [PYTHON, '-c', 'print("ready")'];
  return [
    { name: 'python', archive: () => hostImage('bench/python:1', pythonLayers()), command: printReady },
    {
      name: 'gcc',
      archive: () => hostImage('bench/gcc:1', [programClosure([GCC, CC1]), ['/usr/lib/gcc']]),
      command: ['sh', '-c', `echo 'int main(void) { return 0; }' | ${GCC} -x c -S -o /dev/null - && echo ready`],
    },
    {
      name: 'big',
      archive: () => hostImage('bench/big:1', [...pythonLayers(), ['/usr/lib/jvm'], ['/usr/share/doc', '/usr/share/locale']]),
      command: printReady,
    },
  ];
}
