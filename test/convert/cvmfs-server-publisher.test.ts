// make-thin's cvmfs_server publisher against a stand-in cvmfs_server on PATH (the real one needs
// a release manager host): the exact ingest command line, the layer tar on stdin, and a failed
// ingest reported instead of ignored (docker2cvmfs never checked the exit status).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { openLayerPublisher } from '../../src/convert/layer-publishers.ts';

const FAKE = `#!/bin/sh
# Records its arguments and what came on stdin, then exits as $FAKE_EXIT says.
echo "$@" > "$FAKE_DIR/args"
cat > "$FAKE_DIR/stdin"
echo "fake ingest says: exit $FAKE_EXIT" >&2
exit "$FAKE_EXIT"
`;

async function withFakeServer(exitCode: number, use: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fake-cvmfs-server-'));
  const saved = { PATH: process.env.PATH, FAKE_DIR: process.env.FAKE_DIR, FAKE_EXIT: process.env.FAKE_EXIT };
  try {
    await writeFile(path.join(dir, 'cvmfs_server'), FAKE);
    await chmod(path.join(dir, 'cvmfs_server'), 0o755);
    Object.assign(process.env, { PATH: `${dir}:${process.env.PATH}`, FAKE_DIR: dir, FAKE_EXIT: String(exitCode) });
    await use(dir);
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await rm(dir, { recursive: true, force: true });
  }
}

test('cvmfs_server ingest gets --catalog, the base dir, the repository and the tar on stdin', async () => {
  await withFakeServer(0, async (dir) => {
    const publisher = await openLayerPublisher('images.example.org', 'cvmfs_server');
    assert.equal(publisher.name, 'cvmfs_server');
    await publisher.ingest('.layers/ab/abcd/layerfs', Readable.from([Buffer.from('tar bytes')]));
    assert.equal((await readFile(path.join(dir, 'args'), 'utf8')).trim(), 'ingest --catalog -t - -b .layers/ab/abcd/layerfs images.example.org');
    assert.equal(await readFile(path.join(dir, 'stdin'), 'utf8'), 'tar bytes');
  });
});

test('a failed cvmfs_server ingest fails the layer with its own message', async () => {
  await withFakeServer(3, async () => {
    const publisher = await openLayerPublisher('images.example.org', 'cvmfs_server');
    await assert.rejects(
      publisher.ingest('.layers/ab/abcd/layerfs', Readable.from([Buffer.from('tar bytes')])),
      /cvmfs_server ingest of \.layers\/ab\/abcd\/layerfs into images\.example\.org failed \(exit 3\): fake ingest says: exit 3/,
    );
  });
});

test('without cvmfs_server, asking for it is a clear error, and a name without a directory too', async () => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await assert.rejects(openLayerPublisher('images.example.org', 'cvmfs_server'), /cvmfs_server is not installed here/);
    await assert.rejects(openLayerPublisher('images.example.org', 'auto'), /needs a repository directory \(create one with `cvmfs-graphdriver repo init DIR --name FQRN`\)/);
  } finally {
    process.env.PATH = saved;
  }
});
