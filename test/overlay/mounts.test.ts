// Mounts and unmounts as the driver makes them: by system calls from the Perl helper where it
// can run, by the mount programs from a shell where it cannot; the same outcomes either way.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bindMount, isMountPoint, listMounts, mountOverlay, unmount } from '../../src/core/fs/mounts.ts';
import { mountSyscallDialect } from '../../src/core/fs/mount-syscalls.ts';
import { findOnPath } from '../../src/core/fs/run.ts';
import { requireRoot, run } from '../helpers/process.ts';
import { tempDir } from './fixtures.ts';

const MOUNTS_MODULE = fileURLToPath(new URL('../../src/core/fs/mounts.ts', import.meta.url));

/** The mount options of the mount at `target`, from /proc/self/mountinfo (per-mount and superblock ones). */
async function mountOptions(target: string): Promise<string[]> {
  const line = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').findLast((entry) => entry.split(' ')[4] === target);
  assert.ok(line, `${target} is mounted`);
  const fields = line.split(' ');
  return [...fields[5]!.split(','), ...fields.at(-1)!.split(',')];
}

/** Two lower dirs, an upper and a work dir, and a mount point, in a fresh dir. */
async function layers(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const base = await tempDir(t, 'mounts-');
  for (const name of ['bottom', 'top', 'upper', 'work', 'merged', 'bound']) await fs.mkdir(path.join(base, name));
  await fs.writeFile(path.join(base, 'bottom', 'a'), 'bottom a');
  await fs.writeFile(path.join(base, 'bottom', 'b'), 'bottom b');
  await fs.writeFile(path.join(base, 'top', 'a'), 'top a');
  return base;
}

test('the driver mounts by system calls where perl runs', () => {
  requireRoot('mounting');
  assert.ok(findOnPath('perl'), 'perl is installed on this host (perl-base), so the Perl helper is what mounts');
  assert.ok(mountSyscallDialect(), `the mount system call numbers of ${process.arch} are known`);
});

test('overlays read-write and read-only with lower dirs relative to a directory, bind mounts, unmounts', async (t) => {
  requireRoot('mounting');
  const base = await layers(t);
  const merged = path.join(base, 'merged');
  await mountOverlay('lowerdir=top:bottom,upperdir=upper,workdir=work', merged, base, { readOnly: false });
  assert.equal(await fs.readFile(path.join(merged, 'a'), 'utf8'), 'top a');
  assert.equal(await fs.readFile(path.join(merged, 'b'), 'utf8'), 'bottom b');
  await fs.writeFile(path.join(merged, 'c'), 'written');
  assert.equal(await fs.readFile(path.join(base, 'upper', 'c'), 'utf8'), 'written');
  assert.ok((await mountOptions(merged)).includes('rw'));
  await unmount(merged);
  assert.equal(await isMountPoint(merged), false);

  await mountOverlay('lowerdir=top:bottom', merged, base, { readOnly: true });
  assert.ok((await mountOptions(merged)).includes('ro'), 'mounted read-only');
  await assert.rejects(fs.writeFile(path.join(merged, 'd'), 'no'), { code: 'EROFS' });
  await unmount(merged);

  await bindMount('top', path.join(base, 'bound'), base);
  assert.equal(await fs.readFile(path.join(base, 'bound', 'a'), 'utf8'), 'top a');
  await unmount(path.join(base, 'bound'));
  assert.equal((await listMounts()).some((mount) => mount.mountPoint.startsWith(base)), false);
});

test('a failed mount says what the kernel said; the next mount works', async (t) => {
  requireRoot('mounting');
  const base = await layers(t);
  const merged = path.join(base, 'merged');
  await assert.rejects(mountOverlay('lowerdir=missing:bottom', merged, base, { readOnly: true }), /^Error: mounting overlay at .*merged with lowerdir=missing:bottom failed \(errno 2\): No such file or directory$/);
  // Nothing mounted there: nothing to do.
  await unmount(path.join(base, 'top'));
  await mountOverlay('lowerdir=top:bottom', merged, base, { readOnly: true });
  await unmount(merged);
});

test('a mount still in use is detached, and goes once its last user leaves', async (t) => {
  requireRoot('mounting');
  const base = await layers(t);
  const merged = path.join(base, 'merged');
  await mountOverlay('lowerdir=top:bottom', merged, base, { readOnly: true });
  // A process whose working directory is inside the mount keeps it busy.
  const user = spawn('sleep', ['30'], { cwd: merged, stdio: 'ignore' });
  t.after(() => user.kill('SIGKILL'));
  await new Promise((resolve) => user.once('spawn', resolve));
  await unmount(merged);
  assert.equal(await isMountPoint(merged), false, 'detached from the tree while still in use');
});

test('without perl, the mount programs do the same from a shell', async (t) => {
  requireRoot('mounting');
  const base = await layers(t);
  // A PATH with the shell, mount and umount, each logging that it ran, and no perl.
  const bin = path.join(base, 'bin');
  await fs.mkdir(bin);
  for (const program of ['mount', 'umount']) {
    const real = findOnPath(program);
    assert.ok(real, `${program} is installed`);
    await fs.writeFile(path.join(bin, program), `#!/bin/sh\necho ${program} >> ${base}/ran\nexec ${real} "$@"\n`, { mode: 0o755 });
  }
  await fs.symlink('/bin/sh', path.join(bin, 'sh'));
  const script = `
    const { mountOverlay, bindMount, unmount, isMountPoint } = await import(${JSON.stringify(MOUNTS_MODULE)});
    const merged = ${JSON.stringify(path.join(base, 'merged'))};
    await mountOverlay('lowerdir=top:bottom', merged, ${JSON.stringify(base)}, { readOnly: true });
    const { readFileSync, writeFileSync } = await import('node:fs');
    const seen = readFileSync(merged + '/a', 'utf8');
    let readOnly = false;
    try { writeFileSync(merged + '/d', 'no'); } catch (error) { readOnly = error.code === 'EROFS'; }
    await unmount(merged);
    await bindMount('top', ${JSON.stringify(path.join(base, 'bound'))}, ${JSON.stringify(base)});
    await unmount(${JSON.stringify(path.join(base, 'bound'))});
    console.log(JSON.stringify({ seen, readOnly, mounted: await isMountPoint(merged) }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: bin } });
  assert.deepEqual(JSON.parse(stdout), { seen: 'top a', readOnly: true, mounted: false });
  assert.deepEqual((await fs.readFile(path.join(base, 'ran'), 'utf8')).split('\n'), ['mount', 'umount', 'mount', 'umount', '']);
});
