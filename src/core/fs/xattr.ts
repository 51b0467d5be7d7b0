import path from 'node:path';
import { log } from '../log.ts';
import { run, RunError } from './run.ts';

// Node has no xattr calls; the attr tools read and write them in one process per tree, which
// keeps the cost per layer constant instead of per file.

export type XattrMap = Map<string, Buffer>;

/** Octal escapes as the attr tools write them for path bytes that are not printable or are `\`. */
function escapeDumpPath(relPath: string): string {
  let out = '';
  for (const byte of Buffer.from(relPath, 'utf8')) {
    out += byte < 0x20 || byte === 0x5c || byte === 0x7f ? `\\${byte.toString(8).padStart(3, '0')}` : String.fromCharCode(byte);
  }
  return Buffer.from(out, 'latin1').toString('utf8');
}

function unescapeDumpPath(text: string): string {
  const raw = Buffer.from(text, 'utf8');
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Every extended attribute below `root`, keyed by path relative to it (`''` is the root itself).
 * Symlinks are not followed, so a link's own attributes are read.
 */
export async function readTreeXattrs(root: string): Promise<Map<string, XattrMap>> {
  const { stdout } = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: root });
  return parseDump(stdout);
}

/** The extended attributes of just these paths below `root`, keyed like readTreeXattrs. */
export async function readPathXattrs(root: string, relPaths: readonly string[]): Promise<Map<string, XattrMap>> {
  if (relPaths.length === 0) return new Map();
  const { stdout } = await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', ...relPaths.map((rel) => (rel === '' ? '.' : `./${rel}`))], { cwd: root });
  return parseDump(stdout);
}

function parseDump(stdout: Buffer): Map<string, XattrMap> {
  const result = new Map<string, XattrMap>();
  let current: XattrMap | undefined;
  for (const line of stdout.toString('utf8').split('\n')) {
    if (line.startsWith('# file: ')) {
      const rel = path.normalize(unescapeDumpPath(line.slice(8)));
      current = new Map();
      result.set(rel === '.' ? '' : rel, current);
    } else if (current && line.length > 0) {
      const eq = line.indexOf('=');
      const name = line.slice(0, eq);
      const value = line.slice(eq + 1);
      current.set(name, value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.alloc(0));
    }
  }
  return result;
}

/** Sets the given attributes on paths relative to `root`; one setfattr process for the lot. */
export async function writeTreeXattrs(root: string, byPath: Map<string, XattrMap>): Promise<void> {
  if (byPath.size === 0) return;
  let dump = '';
  for (const [rel, attrs] of byPath) {
    dump += `# file: ${escapeDumpPath(rel === '' ? '.' : rel)}\n`;
    for (const [name, value] of attrs) dump += `${name}=0x${value.toString('hex')}\n`;
    dump += '\n';
  }
  try {
    await run('setfattr', ['-h', '--restore=-'], { cwd: root, input: dump });
  } catch (err) {
    // Docker's unpacking skips an attribute the filesystem refuses (ENOTSUP: say a macOS
    // `com.apple.*` name; EPERM: user.* on a symlink or device) and fails on anything else.
    // setfattr goes on past such a failure, so only the refused ones are missing.
    const failures = err instanceof RunError ? err.stderr.split('\n').filter((line) => line.trim() !== '') : [];
    if (failures.length === 0 || !failures.every((line) => /: (Operation not supported|Operation not permitted)$/.test(line))) throw err;
    log.warn(`ignored extended attributes the filesystem does not support: ${failures.join('; ')}`);
  }
}
