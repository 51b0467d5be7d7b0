// mount(2) and umount2(2) made by Perl, which can make any system call by number: no mount or
// umount program to start (util-linux's took ~5 ms from a shell, the calls themselves ~0.3 ms),
// four times in every docker run. Only on architectures whose call numbers are listed here, and
// where perl is installed (perl-base is part of every Debian-family system, and the plugin's
// rootfs carries it); elsewhere the mount programs run from a shell.
import { findOnPath } from './run.ts';
import type { CommandDialect } from './command-shell.ts';

/** The numbers of mount and umount2 in the kernel's system call tables. */
const CALL_NUMBERS: Partial<Record<NodeJS.Architecture, { mount: number; umount2: number }>> = {
  x64: { mount: 165, umount2: 166 },
  arm64: { mount: 40, umount2: 39 },
};

/** The numbers of mount and umount2 on this machine; undefined where they are not listed. */
export function mountCallNumbers(): { mount: number; umount2: number } | undefined {
  return CALL_NUMBERS[process.arch];
}

export const MS_RDONLY = 1;
export const MS_BIND = 4096;
export const MNT_DETACH = 2;

// Reads "mount\0CWD\0SOURCE\0TARGET\0TYPE\0FLAGS\0DATA" or "umount2\0CWD\0TARGET\0FLAGS" lines
// and answers each with the error's words, if any, and "MARKER ERRNO" (0 for success). Strings
// go to the kernel as pointers, numbers (flags) as integers: `+ 0` makes them numbers.
const PROGRAM = `
$| = 1;
my ($marker, $mount, $umount2) = @ARGV;
while (my $line = <STDIN>) {
  chomp $line;
  my ($call, $cwd, @args) = split(/\\0/, $line, -1);
  my $result = -1;
  $! = 22;
  if (!chdir($cwd)) {
    print "cannot enter $cwd: ";
  } elsif ($call eq 'mount' && @args == 5) {
    my ($source, $target, $type, $flags, $data) = @args;
    $result = syscall($mount + 0, $source, $target, $type, $flags + 0, $data);
  } elsif ($call eq 'umount2' && @args == 2) {
    $result = syscall($umount2 + 0, $args[0], $args[1] + 0);
  }
  my $errno = $! + 0;
  print $result == 0 ? "$marker 0\\n" : "$!\\n$marker $errno\\n";
}
`;

/**
 * The dialect of the Perl helper, whose "programs" are the calls `mount` (source, target, type,
 * flags, data) and `umount2` (target, flags); undefined where it cannot run.
 */
export function mountSyscallDialect(): CommandDialect | undefined {
  const numbers = mountCallNumbers();
  if (numbers === undefined || findOnPath('perl') === undefined) return undefined;
  return {
    // Only PATH: perl warns on stderr about any locale a minimal rootfs lacks.
    start: (marker) => ({ program: 'perl', args: ['-e', PROGRAM, marker, String(numbers.mount), String(numbers.umount2)], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }),
    line: (call, args, cwd) => {
      const fields = [call, cwd ?? process.cwd(), ...args];
      // Paths come from the layer store and the mount table; a newline or NUL in one would split the request.
      if (fields.some((field) => /[\0\n]/.test(field))) throw new Error(`${call} ${args.join(' ')}: a path with a newline or NUL cannot be mounted`);
      return `${fields.join('\0')}\n`;
    },
    statusName: 'errno',
    describe: (call, args) => {
      if (call === 'umount2') return `unmounting ${args[0]}${Number(args[1]) & MNT_DETACH ? ' (detaching it)' : ''}`;
      const [source, target, type, , data] = args;
      return `mounting ${type ? `${type}${source === type ? '' : ` ${source}`}` : `${source} (bind)`} at ${target}${data ? ` with ${data}` : ''}`;
    },
  };
}
