import fs from 'node:fs/promises';
import { CommandShell } from './command-shell.ts';
import { MNT_DETACH, MS_BIND, MS_RDONLY, mountSyscallDialect } from './mount-syscalls.ts';

// Node cannot call mount(2): a Perl helper kept for it makes the calls (mount-syscalls.ts), or,
// where it cannot run, the mount and umount programs (util-linux on a host, busybox in a
// rootfs) do, started from one shell kept for them. Relative lowerdir paths are resolved
// against the helper's working directory, which keeps options short for deep images.

const syscallDialect = mountSyscallDialect();
const syscalls = syscallDialect ? new CommandShell({ dialect: syscallDialect }) : undefined;
const mountShell = new CommandShell();

/** Starts the helper that mounts and unmounts, ahead of the first mount; best effort. */
export function prepareMounting(): void {
  (syscalls ?? mountShell).prepare();
}

export interface MountEntry {
  mountPoint: string;
  fsType: string;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function listMounts(): Promise<MountEntry[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    mounts.push({ mountPoint: unescapeMountField(fields[4]!), fsType: fields[separator + 1]! });
  }
  return mounts;
}

/** Mount points at or below `dir`, deepest first so they can be unmounted in that order. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return (await listMounts())
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

export async function isMountPoint(dir: string): Promise<boolean> {
  return (await listMounts()).some((m) => m.mountPoint === dir);
}

/** `options` are overlay's own (lowerdir and so on); relative paths in them are relative to `cwd`. */
export async function mountOverlay(options: string, target: string, cwd: string, access: { readOnly: boolean }): Promise<void> {
  if (syscalls) return syscalls.run('mount', ['overlay', target, 'overlay', String(access.readOnly ? MS_RDONLY : 0), options], { cwd });
  await mountShell.run('mount', ['-t', 'overlay', 'overlay', '-o', access.readOnly ? `ro,${options}` : options, target], { cwd });
}

/** `source` may be relative to `cwd`, like overlay's lower dirs. */
export async function bindMount(source: string, target: string, cwd: string): Promise<void> {
  if (syscalls) return syscalls.run('mount', [source, target, '', String(MS_BIND), ''], { cwd });
  await mountShell.run('mount', ['-o', 'bind', source, target], { cwd });
}

async function unmountOnce(target: string, detach: boolean): Promise<void> {
  if (syscalls) return syscalls.run('umount2', [target, String(detach ? MNT_DETACH : 0)]);
  await mountShell.run('umount', detach ? ['-l', target] : [target]);
}

export async function unmount(target: string): Promise<void> {
  try {
    await unmountOnce(target, false);
  } catch (err) {
    // A mount still busy (a process inside it) is detached instead, as Docker does on removal,
    // so the layer can go; the kernel frees it when the last user leaves.
    if (!(await isMountPoint(target))) return;
    if (!/busy/i.test((err as Error).message)) throw err;
    await unmountOnce(target, true);
  }
}
