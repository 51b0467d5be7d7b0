import { run } from './run.ts';

// Node cannot mknod; one shell running mknod for every device, fifo and whiteout of a layer
// costs one process per layer instead of one per file.

export interface SpecialFile {
  /** Path relative to the root it is made in. */
  relPath: string;
  type: 'char' | 'block' | 'fifo';
  major: number;
  minor: number;
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

export async function makeSpecialFiles(root: string, files: SpecialFile[]): Promise<void> {
  if (files.length === 0) return;
  const lines = files.map((file) => {
    const target = shellQuote(`./${file.relPath}`);
    if (file.type === 'fifo') return `mknod -m 000 ${target} p`;
    return `mknod -m 000 ${target} ${file.type === 'char' ? 'c' : 'b'} ${file.major} ${file.minor}`;
  });
  await run('sh', ['-e', '-s'], { cwd: root, input: `${lines.join('\n')}\n` });
}
