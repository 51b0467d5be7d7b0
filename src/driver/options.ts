// Storage options dockerd passes from `--storage-opt` / daemon.json "storage-opts".

const KNOWN_OPTIONS = ['overlay2.override_kernel_check'];

function parseBool(key: string, value: string): boolean {
  if (/^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  throw new Error(`storage option ${key}=${value}: expected true or false`);
}

/** Rejects options this driver does not know, naming the ones it does. */
export function checkDriverOptions(opts: string[] | null | undefined): void {
  for (const opt of opts ?? []) {
    const eq = opt.indexOf('=');
    const key = (eq < 0 ? opt : opt.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : opt.slice(eq + 1).trim();
    switch (key) {
      case 'overlay2.override_kernel_check':
        // Accepted so daemon.json files written for overlay2 work unchanged; this driver checks
        // that the kernel has overlay instead of checking its version.
        parseBool(key, value);
        break;
      default:
        throw new Error(`unknown storage option ${JSON.stringify(key)}; known options: ${KNOWN_OPTIONS.join(', ')}`);
    }
  }
}
