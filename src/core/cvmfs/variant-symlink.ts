// Symlink targets may contain $(VAR) or $(VAR:-default); the client substitutes them from its
// environment at lookup time (doc §2.5 "Variant symlinks"). An unset variable without a default
// becomes empty; an unterminated "$(" stays as written.

export type SymlinkEnvironment = Readonly<Record<string, string | undefined>>;

const VARIABLE = /\$\(([^)]*)\)/g;

export function expandVariantSymlink(target: string, environment: SymlinkEnvironment): string {
  if (!target.includes('$(')) return target;
  return target.replace(VARIABLE, (_match, body: string) => {
    const separator = body.indexOf(':-');
    const name = separator < 0 ? body : body.slice(0, separator);
    const fallback = separator < 0 ? '' : body.slice(separator + 2);
    return environment[name] ?? fallback;
  });
}
