// The directories a mount looked into, kept beside the cache for the next mount of the
// repository: the list itself (merged, bounded, written whole, a damaged one ignored), and a real
// mount of the fixture repository that keeps its list and a second one that has those
// directories' tables ready before anything looks into them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { directoriesInUseFile, MAX_DIRECTORIES_KEPT, readDirectoriesInUse, repositoriesWithDirectoriesInUse, writeDirectoriesInUse } from '../../src/core/cvmfs/directories-in-use.ts';
import { isMounted, unmount } from '../../src/core/fuse/mount.ts';
import { log } from '../../src/core/log.ts';
import { copyFixtureRepository, FQRN, makeTempDir, PUBLIC_KEY, removeDir } from './fixture.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const LAYER = '/.layers/ea/ea66dde93e66299e87bb86dbd40931a800986c950db40747a38af66e2b04a789/layerfs';

let dir: string;
before(async () => {
  dir = await makeTempDir('directories-in-use');
});
after(async () => {
  await removeDir(dir);
});

test('the repositories with lists are named, the most recently ended mount\'s first', async () => {
  const cache = join(dir, 'cache-named');
  assert.deepEqual(await repositoriesWithDirectoriesInUse(cache), [], 'none before any mount ended');
  for (const [fqrn, ageSeconds] of [['old.example.org', 300], ['new.example.org', 10], ['middle.example.org', 60]] as const) {
    const file = directoriesInUseFile(cache, fqrn);
    await writeDirectoriesInUse(file, ['/a']);
    const when = Date.now() / 1000 - ageSeconds;
    await utimes(file, when, when);
  }
  // What a mount writing its list at that moment leaves beside them.
  await writeFile(join(cache, 'directories-in-use', 'busy.example.org.json.123.tmp'), '[]');
  assert.deepEqual(await repositoriesWithDirectoriesInUse(cache), ['new.example.org', 'middle.example.org', 'old.example.org']);
});

test('a list puts this mount\'s directories first, then earlier ones, up to its bound, and is written whole', async () => {
  const file = directoriesInUseFile(join(dir, 'cache'), 'example.org');
  assert.deepEqual(await readDirectoriesInUse(file), [], 'none before a mount ended');
  await writeDirectoriesInUse(file, ['/a', '/b']);
  await writeDirectoriesInUse(file, ['/c', '/a']);
  assert.deepEqual(await readDirectoriesInUse(file), ['/c', '/a', '/b']);
  const many = Array.from({ length: MAX_DIRECTORIES_KEPT + 10 }, (_, i) => `/d${i}`);
  await writeDirectoriesInUse(file, many);
  const kept = await readDirectoriesInUse(file);
  assert.equal(kept.length, MAX_DIRECTORIES_KEPT);
  assert.deepEqual(kept.slice(0, 2), ['/d0', '/d1']);
  assert.deepEqual(await readdir(join(dir, 'cache', 'directories-in-use')), ['example.org.json'], 'no staging file left');
});

test('a damaged list is ignored with a warning, and replaced when the mount ends', async (t) => {
  const file = directoriesInUseFile(join(dir, 'cache'), 'damaged.org');
  await mkdir(join(dir, 'cache', 'directories-in-use'), { recursive: true });
  const warnings = t.mock.method(log, 'warn', () => {});
  for (const text of ['{"not": "a list"', '["relative/path"]', '[1, 2]']) {
    await writeFile(file, text);
    assert.deepEqual(await readDirectoriesInUse(file), []);
  }
  assert.equal(warnings.mock.callCount(), 3);
  assert.match(String(warnings.mock.calls[0]!.arguments[0]), /is damaged .* written anew when this mount ends/);
  await writeDirectoriesInUse(file, ['/x']);
  assert.deepEqual(await readDirectoriesInUse(file), ['/x']);
});

test('a mount keeps the directories it looked into, and the next mount has their tables ready before any lookup', async () => {
  const storage = await copyFixtureRepository(join(dir, 'served'));
  const cache = join(dir, 'mount-cache');
  const mountpoint = join(dir, 'mnt');
  const mountAndLog = async (logFile: string) => {
    await mkdir(mountpoint, { recursive: true });
    const server = spawn(process.execPath, [MAIN, 'mount', storage, mountpoint, '--fqrn', FQRN, '--key', PUBLIC_KEY, '--cache', cache, '--image-layers', '--debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    for (const stream of [server.stdout!, server.stderr!]) createInterface({ input: stream }).on('line', (line) => lines.push(line));
    const deadline = Date.now() + 20_000;
    while (!(await isMounted(mountpoint))) {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`the mount did not come up:\n${lines.join('\n')}`);
      await sleep(50);
    }
    return {
      lines,
      async unmount() {
        await unmount(mountpoint);
        if (server.exitCode === null) await once(server, 'exit');
        await writeFile(logFile, lines.join('\n'));
      },
    };
  };

  const first = await mountAndLog(join(dir, 'first.log'));
  await stat(join(mountpoint, LAYER, 'perm', 'exec-0755'));
  await stat(join(mountpoint, LAYER, 'deep', 'level2', 'level3'));
  await first.unmount();
  const kept = await readDirectoriesInUse(directoriesInUseFile(cache, FQRN));
  for (const directory of ['/', `${LAYER}/perm`, `${LAYER}/deep`, `${LAYER}/deep/level2`]) assert.ok(kept.includes(directory), `${directory} in ${kept.join(', ')}`);
  assert.ok(kept.indexOf(LAYER) < kept.indexOf(`${LAYER}/perm`), 'in the order they were looked into');

  const second = await mountAndLog(join(dir, 'second.log'));
  try {
    const ready = /^.*the (\d+) directories earlier mounts looked into are ready/;
    const deadline = Date.now() + 10_000;
    while (!second.lines.some((line) => ready.test(line)) && Date.now() < deadline) await sleep(20);
    assert.equal(Number(second.lines.find((line) => ready.test(line))?.match(ready)?.[1]), kept.length);
    await stat(join(mountpoint, LAYER, 'perm', 'exec-0755'));
    // The reader's lines come through the main thread, a moment after its answers.
    while (!second.lines.some((line) => line.includes('LOOKUP "exec-0755"')) && Date.now() < deadline) await sleep(20);
    assert.ok(second.lines.some((line) => /LOOKUP "exec-0755" in node \d+: found, from its table/.test(line)), second.lines.join('\n'));
    assert.ok(!second.lines.some((line) => /fuse: LOOKUP on node \d+: answered in/.test(line)), 'no lookup on the path reached the main thread');
  } finally {
    await second.unmount();
  }
});
