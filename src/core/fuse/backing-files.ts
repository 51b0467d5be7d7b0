// Registers backing files on a FUSE connection, for passthrough opens: the kernel then reads,
// maps and splices such a file straight from the backing file (a cached object on the local
// disk), sharing that file's page cache, instead of asking the server for every page. A file
// is registered with ioctl(FUSE_DEV_IOC_BACKING_OPEN) on the connection's /dev/fuse descriptor,
// which Node cannot call; Perl can (perl-base is part of every Debian-family system, and the
// plugin's rootfs carries it). One small Perl program per connection holds the descriptor as its
// fd 3 and answers one line per request, in order. Without it every open simply goes without
// passthrough. Holding the descriptor, it also mounts the connection (mount(2) with fd=3): no
// mount program to start from a process of this size (~15 ms).
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { getSystemErrorMessage, getSystemErrorName } from 'node:util';
import { mountCallNumbers, MS_RDONLY } from '../fs/mount-syscalls.ts';
import { log } from '../log.ts';
import { MountRefused } from './mount.ts';

// _IOW(229, 1, struct fuse_backing_map { int32 fd; uint32 flags; uint64 padding; }) and
// _IOW(229, 2, uint32): the ioctl numbers of include/uapi/linux/fuse.h.
const BACKING_OPEN = 0x4010e501;
const BACKING_CLOSE = 0x4004e502;

// Refusals that no other file would escape: EPERM (no CAP_SYS_ADMIN), ENOTTY and EINVAL (no
// support), ELOOP (the cache on a stacked filesystem such as overlay).
const SYSTEMIC_ERRNOS: ReadonlySet<number> = new Set([1, 25, 22, 40]);

// "o PATH" → the backing id, or "-ERRNO"; "c ID" closes one and gets no answer; "m SOURCE\0TARGET
// \0TYPE\0DATA" mounts read-only (mount's call number is the program's argument) → "0" or
// "-ERRNO". The file opened for registering is closed right after: the kernel keeps
// its own reference until the id is closed (or the connection ends). Input ends when the server
// closes the pipe or dies.
const PROGRAM = `
$| = 1;
my ($mount) = @ARGV;
open(my $fuse, '<&=', 3) or die "no FUSE descriptor: $!\\n";
while (my $line = <STDIN>) {
  chomp $line;
  my ($op, $arg) = split(/ /, $line, 2);
  if ($op eq 'm') {
    my ($source, $target, $type, $data) = split(/\\0/, $arg, -1);
    my $result = syscall($mount + 0, $source, $target, $type, ${MS_RDONLY}, $data);
    print $result == 0 ? "0\\n" : '-' . ($! + 0) . "\\n";
  } elsif ($op eq 'o') {
    my $id;
    if (open(my $file, '<', $arg)) {
      $id = ioctl($fuse, ${BACKING_OPEN}, pack('lLQ', fileno($file), 0, 0));
      close($file);
    }
    print defined($id) ? ($id + 0) . "\\n" : '-' . ($! + 0) . "\\n";
  } elsif ($op eq 'c') {
    ioctl($fuse, ${BACKING_CLOSE}, pack('L', $arg));
  }
}
`;

/** What a session needs of BackingFiles. */
export type BackingFileRegistry = Pick<BackingFiles, 'usable' | 'open' | 'close' | 'stop'>;

/** An answer still to come: what to do with it, or with the helper's failure. */
interface Waiting {
  answer(value: number): void;
  fail(reason: string): void;
}

export class BackingFiles {
  readonly #child: ChildProcess;
  /** Answers still to come, in the order the requests went out. */
  readonly #waiting: Waiting[] = [];
  #failure: string | null = null;

  /** Starts the helper for the connection open on `fd`; it ends when stop() is called or this process exits. */
  constructor(fd: number) {
    // Only PATH: perl warns on stderr about any locale a minimal rootfs lacks.
    this.#child = spawn('perl', ['-e', PROGRAM, String(mountCallNumbers()?.mount ?? 0)], { stdio: ['pipe', 'pipe', 'pipe', fd], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    this.#child.on('error', (error) => this.#fail(`cannot run perl: ${error.message}`));
    this.#child.on('exit', (code, signal) => this.#fail(`the helper exited (${signal ?? `exit ${code}`})`));
    this.#child.stdin!.on('error', () => undefined);
    this.#child.stderr!.on('data', (chunk: Buffer) => log.debug(`fuse: backing-file helper: ${chunk.toString().trim()}`));
    createInterface({ input: this.#child.stdout! }).on('line', (line) => this.#waiting.shift()?.answer(Number(line)));
    // A standby process must be able to exit while it waits for a mount.
    this.#child.unref();
    for (const stream of [this.#child.stdin, this.#child.stdout, this.#child.stderr]) (stream as unknown as Socket).unref();
  }

  /** False once it is known that no file can be registered (the helper cannot run, the kernel refuses). */
  get usable(): boolean {
    return this.#failure === null;
  }

  /** Registers the file at `path` (absolute, no newline) and gives its backing id. */
  open(path: string): Promise<number> {
    if (this.#failure !== null) return Promise.reject(new Error(this.#failure));
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#waiting.push({
      answer: (id) => {
        if (id > 0) return resolve(id);
        const reason = `the kernel refused a backing file (errno ${-id})`;
        reject(new Error(reason));
        if (SYSTEMIC_ERRNOS.has(-id)) this.#fail(reason);
      },
      fail: (reason) => reject(new Error(reason)),
    });
    this.#child.stdin!.write(`o ${path}\n`);
    return promise;
  }

  /**
   * Mounts the connection read-only at `target` with mount(2): `data` names it `fd=3`, the
   * helper's number for it. Fails with MountRefused when the kernel refuses, otherwise when the
   * helper cannot do it (no perl, no known call number), and then a mount program can.
   */
  mount(source: string, target: string, type: string, data: string): Promise<void> {
    if (this.#failure !== null) return Promise.reject(new Error(this.#failure));
    if (mountCallNumbers() === undefined) return Promise.reject(new Error(`no mount call number known for ${process.arch}`));
    const fields = [source, target, type, data];
    if (fields.some((field) => /[\0\n]/.test(field))) return Promise.reject(new MountRefused(`${target}: a path with a newline or NUL cannot be mounted`));
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waiting.push({
      answer: (result) => (result === 0 ? resolve() : reject(new MountRefused(`${getSystemErrorMessage(result)} (${getSystemErrorName(result)})`))),
      fail: (reason) => reject(new Error(reason)),
    });
    this.#child.stdin!.write(`m ${fields.join('\0')}\n`);
    // The helper's pipes do not keep this process alive (see the constructor), and while the
    // mount is made nothing else may: the answer must.
    const answers = this.#child.stdout as unknown as Socket;
    answers.ref();
    return promise.finally(() => answers.unref());
  }

  /** Lets the kernel drop backing file `id` once no open file uses it. */
  close(id: number): void {
    if (this.#failure === null) this.#child.stdin!.write(`c ${id}\n`);
  }

  /** Ends the helper, which lets go of its descriptor of the connection. */
  stop(): void {
    this.#fail('stopped');
    this.#child.stdin!.end();
  }

  #fail(reason: string): void {
    if (this.#failure !== null) return;
    this.#failure = reason;
    // Once per mount: reads then all come through this process, which an operator may want to know.
    if (reason !== 'stopped') log.info(`fuse: no passthrough from now on (every read goes through this process): ${reason}`);
    for (const waiting of this.#waiting.splice(0)) waiting.fail(reason);
  }
}
