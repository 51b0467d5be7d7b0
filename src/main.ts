import { cac } from 'cac';
import { enableDebug, log, logToFile } from './core/log.ts';
import { VERSION } from './core/version.ts';

const cli = cac('cvmfs-graphdriver');

cli.option('--debug', 'Log every request and step (for debugging)');

cli
  .command('serve-driver', 'Serve the Docker graphdriver plugin protocol on a unix socket')
  .option('--socket <path>', 'Socket to listen on; dockerd finds /run/docker/plugins/<name>.sock as storage driver <name>', {
    default: '/run/docker/plugins/cvmfs-graphdriver.sock',
  })
  .option('--state <file>', 'Where to remember dockerd\'s Init across plugin restarts (default: /run/cvmfs-graphdriver/<socket name>.init.json)')
  .option('--repository <spec>', 'A repository thin images may use: FQRN=URL,key=PUB, or FQRN to take it from --cvmfs-config (repeatable; when given, only these are allowed; also from $CVMFS_GRAPHDRIVER_REPOSITORIES and dockerd\'s --storage-opt cvmfs.repository=<spec>)', { default: [] })
  .option('--cvmfs-config <dir>', 'CernVM-FS client configuration for repositories given by name', { default: '/etc/cvmfs' })
  .option('--cache <dir>', 'Object cache of the embedded CernVM-FS client', { default: '/var/lib/cvmfs-graphdriver/cache' })
  .option('--cache-size <MB>', 'Bound of that cache', { default: 4000 })
  .option('--log-dir <dir>', 'Logs of the repository mounts', { default: '/var/log/cvmfs-graphdriver' })
  .option('--client <kind>', 'CernVM-FS client that mounts repositories: auto, embedded or cvmfs2 (auto: cvmfs2 where installed, for repositories configured in /etc/cvmfs; the embedded one otherwise)', { default: 'auto' })
  .option('--no-passthrough', 'Embedded client: serve every read itself instead of letting the kernel read cached files directly (FUSE passthrough); without it, containers of thin images can stack overlays of their own (also $CVMFS_GRAPHDRIVER_PASSTHROUGH=0)')
  .example('cvmfs-graphdriver serve-driver --socket /run/docker/plugins/cvmfs.sock   # then: dockerd --experimental -s cvmfs')
  .example('cvmfs-graphdriver serve-driver --repository images.example.org=http://cvmfs.example.org/cvmfs/@fqrn@,key=/etc/images.pub')
  .action(async (flags: { socket: string; state?: string; repository: string | string[]; cvmfsConfig: string; cache: string; cacheSize: number; logDir: string; client: string; passthrough: boolean }) => {
    const { serveDriverCommand } = await import('./driver/serve-command.ts');
    await serveDriverCommand({ ...flags, repository: ([] as string[]).concat(flags.repository) });
  });

cli
  .command('mount <repository> <mountpoint>', 'Mount a CernVM-FS repository read-only, fetching files lazily; serves until unmounted')
  .option('--key <file>', 'Public master key(s) of the repository, ":"-separated (default: from the CernVM-FS configuration)')
  .option('--fqrn <name>', 'Repository name, when a URL or directory does not end in it')
  .option('--cvmfs-config <dir>', 'CernVM-FS client configuration to read for a repository name', { default: '/etc/cvmfs' })
  .option('--cache <dir>', 'Local object cache, shared by all repositories', { default: '/var/lib/cvmfs-graphdriver/cache' })
  .option('--cache-size <MB>', 'Bound of the cache; least recently used objects go first', { default: 4000 })
  .option('--proxy <list>', 'HTTP proxies in CVMFS_HTTP_PROXY syntax (default: from the configuration, else none)')
  .option('--image-layers', 'Present the repository as container image layers for overlay: .wh.* files as whiteouts, .cvmfscatalog markers hidden')
  .option('--no-passthrough', 'Serve every read itself instead of letting the kernel read cached files directly (FUSE passthrough, Linux 6.9+, needs perl); passthrough makes the mount a level of filesystem stacking, so an overlay on it cannot have another overlay on top')
  .example('cvmfs-graphdriver mount unpacked.cern.ch /mnt/unpacked')
  .example('cvmfs-graphdriver mount http://server/cvmfs/example.org /mnt/example --key example.org.pub')
  .action(async (repository: string, mountpoint: string, flags: { key?: string; fqrn?: string; cvmfsConfig: string; cache: string; cacheSize: number; proxy?: string; imageLayers?: boolean; passthrough: boolean }) => {
    const { mountCommand } = await import('./core/cvmfs/mount-command.ts');
    await mountCommand(repository, mountpoint, {
      key: flags.key,
      fqrn: flags.fqrn,
      configRoot: flags.cvmfsConfig,
      cacheDir: flags.cache,
      cacheMb: Number(flags.cacheSize),
      proxy: flags.proxy,
      imageLayers: flags.imageLayers,
      passthrough: flags.passthrough,
    });
  });

cli
  .command('umount <mountpoint>', 'Unmount a repository (detached if files are open; also clears a mount whose server died)')
  .action(async (mountpoint: string) => {
    const { umountCommand } = await import('./core/cvmfs/mount-command.ts');
    await umountCommand(mountpoint);
  });

cli
  .command('repo <action> [...args]', 'Publish and read CernVM-FS repositories: init, ingest, resign, check, ls, cat, stat')
  .option('--name <fqrn>', 'init: repository name, like example.cern.ch')
  .option('--hash <algorithm>', 'init: content hash, sha1 (default), rmd160 or shake128')
  .option('--days <n>', 'init, resign: whitelist validity in days (default 30)')
  .option('--storage <path>', 'init: storage directory to serve (default DIR/storage); may hold an existing repository')
  .option('--import-keys <dir>', 'init: take <fqrn>.masterkey/.pub/.key/.crt from here (to publish on top of an existing repository)')
  .option('--tar [file]', 'ingest: tar to extract; - (or no file) for stdin')
  .option('--base-dir <path>', 'ingest: repository directory to extract into')
  .option('--layer <digest>', 'ingest: extract into the DUCC layer directory .layers/<xx>/<hex>/layerfs, as its own catalog')
  .option('--catalog', 'ingest: make the base directory a nested catalog')
  .option('--delete <path>', 'ingest: remove this path first (repeatable)')
  .option('--owner <uid:gid>', 'ingest: owner of every entry (default: keep the tar\'s)')
  .option('--no-chunking', 'init, ingest: store large files whole instead of in 4-16 MiB chunks')
  .option('--fqrn <name>', 'check, ls, cat, stat: repository name (default: last component of DIR or URL)')
  .option('--key <file>', 'check, ls, cat, stat: public master key (default for a publisher DIR: its own)')
  .option('--cache <dir>', 'check, ls, cat, stat: object cache to use (default: a temporary one)')
  .example('cvmfs-graphdriver repo init /srv/pub --name example.cern.ch')
  .example('cvmfs-graphdriver repo ingest /srv/pub --tar layer.tar --base-dir /software/v1 --catalog')
  .example('cvmfs-graphdriver repo check http://host/cvmfs/example.cern.ch --key example.cern.ch.pub')
  .action(async (action: string, args: string[], flags: import('./core/cvmfs/publish/commands.ts').RepoFlags) => {
    const { repoCommand } = await import('./core/cvmfs/publish/commands.ts');
    await repoCommand(action, args, flags);
  });

cli
  .command('make-thin', 'Convert a registry image into a thin image whose layers live in a CernVM-FS repository')
  .option('-i, --input-reference <ref>', 'Image to convert, e.g. library/ubuntu:22.04, registry:5000/app@sha256:…')
  .option('-o, --output-reference <ref>', 'Name of the thin image')
  .option('-r, --repository <dir|fqrn>', 'Repository directory (embedded publisher, made by `repo init`) or name (cvmfs_server)')
  .option('-s, --subdirectory <path>', 'Put layers at <path>/<digest> (docker2cvmfs layout) instead of .layers/<xx>/<digest>/layerfs (DUCC layout)')
  .option('--registry <url>', 'Registry base URL to pull from and push to, e.g. http://127.0.0.1:5000 (default: from the references)')
  .option('--platform <os/arch[/variant]>', 'Platform to pick from a multi-platform image (default: this host\'s)')
  .option('--publisher <kind>', 'auto, embedded or cvmfs_server (auto: embedded for a directory or without cvmfs_server)', { default: 'auto' })
  .option('--push', 'Push the thin image to the output reference\'s registry')
  .option('--output-file <file>', 'Write the thin image as a docker-archive (docker load -i)')
  .option('--load', 'Load the thin image into the Docker daemon (DOCKER_HOST); the default unless --push or --output-file')
  .option('--parallel <n>', 'Layers downloaded at once', { default: 3 })
  .option('--json', 'Print the result as JSON')
  .example('cvmfs-graphdriver repo init /srv/images --name images.example.org')
  .example('cvmfs-graphdriver make-thin -i library/python:3.12 -o example/python:3.12-thin -r /srv/images --push')
  .action(async (flags: import('./convert/make-thin-command.ts').MakeThinFlags) => {
    const { makeThinCommand } = await import('./convert/make-thin-command.ts');
    await makeThinCommand(flags);
  });

cli
  .command('standby-mount', 'Wait for serve-driver to hand this process a mount on stdin (internal: the driver keeps one ready, so that a repository mounts without waiting for a process to start)')
  .action(async () => {
    // Loaded, and the FUSE device's reader booted, before waiting: the point of standing by.
    await import('./core/cvmfs/mount-command.ts');
    const { prepareFuseDeviceAhead } = await import('./core/fuse/server.ts');
    prepareFuseDeviceAhead();
    const { readMountOrder } = await import('./driver/standby-mount.ts');
    const order = await readMountOrder(process.stdin);
    if (order === null) return;
    logToFile(order.logFile);
    if (order.args.includes('--debug')) enableDebug();
    cli.parse([...process.argv.slice(0, 2), 'mount', ...order.args], { run: false });
    await cli.runMatchedCommand();
  });

cli.command('version', 'Print the version').action(() => {
  console.log(VERSION);
});

cli.help();
cli.version(VERSION);

async function main(): Promise<void> {
  const argv = process.argv;
  if (argv.includes('--debug') || process.env.DEBUG === '1' || process.env.debug === '1') enableDebug();
  cli.parse(argv, { run: false });
  if (!cli.matchedCommand) {
    if (cli.args.length > 0) throw new Error(`unknown command ${JSON.stringify(cli.args[0])}; see --help`);
    if (!cli.options.help && !cli.options.version) cli.outputHelp();
    return;
  }
  await cli.runMatchedCommand();
}

main().catch((err: Error) => {
  log.error(err.message);
  log.debug(err.stack);
  process.exitCode = 1;
});
