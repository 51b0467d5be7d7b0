import { cac } from 'cac';
import { enableDebug, log } from './core/log.ts';
import { VERSION } from './core/version.ts';

const cli = cac('cvmfs-graphdriver');

cli.option('--debug', 'Log every request and step (for debugging)');

cli
  .command('serve-driver', 'Serve the Docker graphdriver plugin protocol on a unix socket')
  .option('--socket <path>', 'Socket to listen on; dockerd finds /run/docker/plugins/<name>.sock as storage driver <name>', {
    default: '/run/docker/plugins/cvmfs-graphdriver.sock',
  })
  .option('--state <file>', 'Where to remember dockerd\'s Init across plugin restarts (default: /run/cvmfs-graphdriver/<socket name>.init.json)')
  .example('cvmfs-graphdriver serve-driver --socket /run/docker/plugins/cvmfs.sock   # then: dockerd --experimental -s cvmfs')
  .action(async (flags: { socket: string; state?: string }) => {
    const { serveDriverCommand } = await import('./driver/serve-command.ts');
    await serveDriverCommand(flags);
  });

cli
  .command('make-thin', 'Convert a registry image into a thin image (not available in this version)')
  .allowUnknownOptions()
  .action(() => {
    throw new Error('make-thin is not available in this version yet');
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
