// overlayChanges on an upper directory written by the kernel through a real overlay mount, against
// the rules of Docker's pkg/archive OverlayChanges (what `docker diff` prints under overlay2).

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { applyLayer } from '../../src/core/overlay/apply-layer.ts';
import { overlayChanges } from '../../src/core/overlay/changes.ts';
import { overlayFeatureOptions } from '../../src/core/overlay/host-support.ts';
import { isMountPoint, mountOverlay, unmount } from '../../src/core/fs/mounts.ts';
import type { Change } from '../../src/driver/protocol.ts';
import { chunks, dir, file, makeTar, run, symlink, tempDir } from './fixtures.ts';

const KIND = ['C', 'A', 'D'] as const;

function show(changes: Change[]): string[] {
  return changes.map((change) => `${KIND[change.Kind]} ${change.Path}`);
}

interface Overlay {
  lowers: string[];
  upper: string;
  merged: string;
}

/** Two image layers (bottom, top) and an empty upper, mounted read-write at `merged`. */
async function mountImage(t: TestContext): Promise<Overlay> {
  const base = await tempDir(t, 'changes-');
  const [bottom, top, upper, work, merged] = ['bottom', 'top', 'upper', 'work', 'merged'].map((name) => path.join(base, name)) as [string, string, string, string, string];
  for (const d of [bottom, top, upper, work, merged]) await fs.mkdir(d);
  const T = 1_500_000_000;
  await applyLayer(chunks(await makeTar([
    dir('bin', { mtime: T }),
    file('bin/ls', 'ls', { mode: 0o755, mtime: T }),
    file('bin/cat', 'cat', { mode: 0o755, mtime: T }),
    file('bin/sh', 'sh', { mode: 0o755, mtime: T }),
    dir('etc', { mtime: T }),
    file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n', { mtime: T }),
    file('etc/hostname', 'host\n', { mtime: T }),
    dir('home', { mtime: T }),
    dir('opt', { mtime: T }),
    dir('opt/a', { mtime: T }),
    file('opt/a/b', 'b', { mtime: T }),
    file('opt/c', 'c', { mtime: T }),
    dir('usr', { mtime: T }),
    dir('usr/share', { mtime: T }),
    dir('usr/share/doc', { mtime: T }),
    file('usr/share/doc/readme', 'r', { mtime: T }),
    dir('usr/share/misc', { mtime: T }),
    dir('var', { mtime: T }),
    dir('var/log', { mtime: T }),
    symlink('var/run', '/run', { mtime: T }),
  ])), bottom);
  await applyLayer(chunks(await makeTar([
    dir('etc', { mtime: T + 10 }),
    file('etc/extra', 'extra', { mtime: T + 10 }),
    dir('lib', { mtime: T + 10 }),
    file('lib/libc', 'libc', { mtime: T + 10 }),
  ])), top);
  const lowers = [top, bottom];
  const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`, ...(await overlayFeatureOptions())].join(',');
  await mountOverlay(options, merged, base, { readOnly: false });
  t.after(async () => {
    if (await isMountPoint(merged)) await unmount(merged);
  });
  return { lowers, upper, merged };
}

async function sh(cwd: string, script: string): Promise<void> {
  await run('sh', ['-e', '-c', script], { cwd });
}

test('changes made through an overlay mount are reported as docker diff reports them', async (t) => {
  const { lowers, upper, merged } = await mountImage(t);
  await sh(merged, [
    'rm bin/ls',
    'rm bin/cat && echo new > bin/cat',
    'mv bin/sh bin/sh2',
    'echo x > new',
    'rm -rf opt && mkdir opt && echo y > opt/z',
    'echo more >> etc/passwd',
    'chmod 600 etc/hostname',
    'rm etc/extra',
    'mkdir -p newdir/sub && echo f > newdir/sub/f',
    'rm -rf usr/share/doc',
    'echo more >> lib/libc',
    'touch scratch && rm scratch',
    'ls home var/log >/dev/null',
  ].join('\n'));
  await unmount(merged);

  assert.deepEqual(show(await overlayChanges(upper, lowers)), [
    'C /bin',
    'C /bin/cat',
    'D /bin/ls',
    'D /bin/sh',
    'A /bin/sh2',
    'C /etc',
    'D /etc/extra',
    'C /etc/hostname',
    'C /etc/passwd',
    'C /lib/libc',
    'A /new',
    'A /newdir',
    'A /newdir/sub',
    'A /newdir/sub/f',
    // Recreated over a deleted directory: overlay makes it opaque, and Docker reports an opaque
    // directory as deleted (what was below is gone) with its new content added.
    'D /opt',
    'A /opt/z',
    'C /usr/share',
    'D /usr/share/doc',
  ]);
});

test('deleting one file reports its directory changed, then the deletion; untouched directories are absent', async (t) => {
  const { lowers, upper, merged } = await mountImage(t);
  await sh(merged, 'rm bin/ls');
  await unmount(merged);
  assert.deepEqual(show(await overlayChanges(upper, lowers)), ['C /bin', 'D /bin/ls']);
});

test('an added file\'s new parent directories are reported once each, parent first', async (t) => {
  const { lowers, upper, merged } = await mountImage(t);
  await sh(merged, 'echo a > home/added\nmkdir -p var/log/app && echo l > var/log/app/x.log');
  await unmount(merged);
  assert.deepEqual(show(await overlayChanges(upper, lowers)), [
    'C /home',
    'A /home/added',
    'C /var/log',
    'A /var/log/app',
    'A /var/log/app/x.log',
  ]);
});

test('a copied-up directory whose size, mode and mtime match the lower one is not reported', async (t) => {
  const { lowers, upper, merged } = await mountImage(t);
  // Writing a file copies its directories up with the lower attributes, times included.
  await sh(merged, 'echo x >> usr/share/doc/readme');
  await unmount(merged);
  assert.ok((await fs.lstat(path.join(upper, 'usr/share/doc'))).isDirectory(), 'the directories were copied up');
  assert.deepEqual(show(await overlayChanges(upper, lowers)), ['C /usr/share/doc/readme']);
  // The same directory with another mode is a change.
  await fs.chmod(path.join(upper, 'usr/share'), 0o700);
  assert.deepEqual(show(await overlayChanges(upper, lowers)), ['C /usr/share', 'C /usr/share/doc/readme']);
});

test('an empty upper directory has no changes', async (t) => {
  const { lowers, upper, merged } = await mountImage(t);
  await unmount(merged);
  assert.deepEqual(await overlayChanges(upper, lowers), []);
});

test('the parent of an added or deleted path is reported even when its own attributes match the lower one', async (t) => {
  const { lowers, upper, merged } = await mountImage(t);
  // Put the directories' times back: only the rule for parents can report them now (moby#13590).
  await sh(merged, [
    'echo a > usr/share/misc/added && touch -d @1500000000 usr/share/misc',
    'rm usr/share/doc/readme && touch -d @1500000000 usr/share/doc',
  ].join('\n'));
  await unmount(merged);
  assert.deepEqual(show(await overlayChanges(upper, lowers)), [
    'C /usr/share/doc',
    'D /usr/share/doc/readme',
    'C /usr/share/misc',
    'A /usr/share/misc/added',
  ]);
});
