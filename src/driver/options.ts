// Storage options dockerd passes from `--storage-opt` / daemon.json "storage-opts".
import { parseRepositorySpec, type RepositorySpec } from './repository-config.ts';

/** A repository thin images may use, as `--repository` takes it: FQRN or FQRN=URL,key=PUB. */
const REPOSITORY_OPTION = 'cvmfs.repository';
const KNOWN_OPTIONS = ['overlay2.override_kernel_check', `${REPOSITORY_OPTION} (repeatable)`];

export interface DriverOptions {
  repositories: RepositorySpec[];
}

function parseBool(key: string, value: string): boolean {
  if (/^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  throw new Error(`storage option ${key}=${value}: expected true or false`);
}

/** What the options ask for; rejects options this driver does not know, naming the ones it does. */
export function parseDriverOptions(opts: string[] | null | undefined): DriverOptions {
  const options: DriverOptions = { repositories: [] };
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
      case REPOSITORY_OPTION:
        options.repositories.push(parseRepositorySpec(value, `storage option ${REPOSITORY_OPTION}`));
        break;
      default:
        throw new Error(`unknown storage option ${JSON.stringify(key)}; known options: ${KNOWN_OPTIONS.join(', ')}`);
    }
  }
  return options;
}
