// Which CernVM-FS repositories the driver may mount for thin images, and how to reach them:
// either from the host's CernVM-FS configuration (/etc/cvmfs, as cvmfs2 uses it), or given
// on the command line as `FQRN=URL[,key=PUB]` for hosts without any CernVM-FS setup.

export interface RepositorySpec {
  fqrn: string;
  /** CVMFS_SERVER_URL syntax (';'-separated, @fqrn@ expanded); absent: from the configuration. */
  serverUrl?: string;
  /** Public key file(s); absent: from the configuration. */
  key?: string;
}

export interface RepositoryAccess {
  /** Repositories named on the command line; when any are, only these may be mounted. */
  specs: Map<string, RepositorySpec>;
  configRoot: string;
  cacheDir: string;
  cacheMb: number;
  /** Whether the embedded client's mounts use FUSE passthrough where the kernel has it. */
  passthrough: boolean;
}

const FQRN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;

/** Whether `text` is a repository name (like unpacked.cern.ch), safe as a directory name too. */
export function isRepositoryName(text: string): boolean {
  return FQRN.test(text);
}

/** Parses `FQRN` or `FQRN=URL,key=PUB`; `source` names where the text came from, for errors. */
export function parseRepositorySpec(text: string, source = '--repository'): RepositorySpec {
  const eq = text.indexOf('=');
  const fqrn = (eq < 0 ? text : text.slice(0, eq)).trim();
  if (!isRepositoryName(fqrn)) throw new Error(`${source} ${JSON.stringify(text)}: ${JSON.stringify(fqrn)} is not a repository name like unpacked.cern.ch`);
  if (eq < 0) return { fqrn };
  const [serverUrl, ...options] = text.slice(eq + 1).split(',');
  if (!serverUrl || !/^https?:\/\//.test(serverUrl)) throw new Error(`${source} ${JSON.stringify(text)}: expected FQRN=http(s)://server/cvmfs/@fqrn@[,key=/path/to/key.pub]`);
  const spec: RepositorySpec = { fqrn, serverUrl };
  for (const option of options) {
    const [name, value] = option.split('=', 2);
    if (name !== 'key' || !value) throw new Error(`${source} ${JSON.stringify(text)}: unknown option ${JSON.stringify(option)} (only key=<file> is known)`);
    spec.key = value;
  }
  if (!spec.key) throw new Error(`${source} ${JSON.stringify(text)}: a repository given by URL needs its public key: add ,key=/path/to/${fqrn}.pub`);
  return spec;
}

export function allowedRepositories(access: RepositoryAccess): ReadonlySet<string> | undefined {
  return access.specs.size > 0 ? new Set(access.specs.keys()) : undefined;
}
