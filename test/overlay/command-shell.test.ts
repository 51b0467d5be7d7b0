// The shell that mount and umount run from: each command's outcome and words reach its caller
// alone, arguments arrive as given, and a command that hangs or a shell that dies fails only
// the command then running.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CommandShell, shDialect } from '../../src/core/fs/command-shell.ts';
import { RunError } from '../../src/core/fs/run.ts';
import { processCommandLines } from '../helpers/process.ts';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'command-shell-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Pids of processes whose command line is `argv`. */
async function processesRunning(argv: string[]): Promise<number[]> {
  const wanted = argv.join('\0');
  return (await processCommandLines()).filter((running) => running.argv.join('\0') === wanted).map((running) => running.pid);
}

test('commands run in order, in their own directory, with their arguments as given', async (t) => {
  const dir = await tempDir(t);
  const shell = new CommandShell();
  t.after(() => shell.close());
  const odd = ["it's", 'two words', '$HOME', '`date`', 'a\nb', '*', ''];
  const runs = odd.map((name, index) => shell.run('sh', ['-c', 'printf %s "$1" > "$2"', 'sh', name, `out${index}`], { cwd: dir }));
  await Promise.all(runs);
  for (const [index, name] of odd.entries()) assert.equal(await readFile(path.join(dir, `out${index}`), 'utf8'), name);
  // Each command's cd stays its own.
  await writeFile(path.join(dir, 'here'), '');
  await shell.run('test', ['-e', 'here'], { cwd: dir });
  await assert.rejects(shell.run('test', ['-e', 'here']), RunError);
});

test('a failing command reports its exit status and its own words; the next one runs normally', async (t) => {
  const shell = new CommandShell();
  t.after(() => shell.close());
  const failed = await shell.run('sh', ['-c', 'echo "some output"; echo "target is busy" >&2; exit 32']).then(
    () => assert.fail('the command failed'),
    (error: unknown) => error,
  );
  assert.ok(failed instanceof RunError);
  assert.match(failed.message, /^sh -c .* failed \(exit 32\): some output\ntarget is busy$/);
  assert.equal(failed.stderr, 'some output\ntarget is busy');
  await shell.run('true', []);
  await assert.rejects(shell.run('no-such-program-here', []), /failed \(exit 127\)/);
});

test('a command past the timeout fails and the commands after it run in a new shell', async (t) => {
  const shell = new CommandShell({ timeoutMs: 300 });
  t.after(() => shell.close());
  const started = Date.now();
  const hung = shell.run('sleep', ['29.5']);
  const after = shell.run('echo', ['fine']);
  await assert.rejects(hung, /sleep 29.5 did not finish in 0.3 s; given up/);
  await after;
  // The hung command went with its shell.
  assert.deepEqual(await processesRunning(['sleep', '29.5']), []);
  assert.ok(Date.now() - started < 5000);
});

test('a shell that dies fails the command it was running, and the next command starts another', async (t) => {
  const shell = new CommandShell();
  t.after(() => shell.close());
  // The command kills the shell that started it.
  await assert.rejects(shell.run('sh', ['-c', 'kill -9 $PPID']), /ended/);
  await shell.run('true', []);
});

test('without the shell program, commands fail with what is missing', async () => {
  const shell = new CommandShell({ dialect: shDialect('no-such-shell-here') });
  await assert.rejects(shell.run('true', []), /no-such-shell-here cannot run: .*ENOENT/);
});

test('a shell prepared ahead runs the commands after it, and only one is started', async (t) => {
  const dir = await tempDir(t);
  // A shell program of its own, so that its processes can be counted.
  const program = path.join(dir, 'counted-sh');
  await symlink('/bin/sh', program);
  const shell = new CommandShell({ dialect: shDialect(program) });
  t.after(() => shell.close());
  shell.prepare();
  shell.prepare();
  assert.equal((await processesRunning([program])).length, 1, 'started before any command');
  await shell.run('touch', [path.join(dir, 'ran')]);
  await readFile(path.join(dir, 'ran'));
  assert.equal((await processesRunning([program])).length, 1);
});
