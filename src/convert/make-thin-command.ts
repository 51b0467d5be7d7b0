import { log } from '../core/log.ts';
import { makeThin } from './make-thin.ts';
import type { PublisherChoice } from './layer-publishers.ts';

export interface MakeThinFlags {
  inputReference?: string;
  outputReference?: string;
  repository?: string;
  subdirectory?: string;
  registry?: string;
  platform?: string;
  publisher: string;
  push?: boolean;
  outputFile?: string;
  load?: boolean;
  parallel: number | string;
  json?: boolean;
}

const PUBLISHERS: readonly PublisherChoice[] = ['auto', 'embedded', 'cvmfs_server'];

export async function makeThinCommand(flags: MakeThinFlags): Promise<void> {
  const missing = [
    ['--input-reference (-i)', flags.inputReference],
    ['--output-reference (-o)', flags.outputReference],
    ['--repository (-r)', flags.repository],
  ].filter(([, value]) => !value).map(([name]) => name);
  if (missing.length > 0) throw new Error(`make-thin needs ${missing.join(', ')}; see make-thin --help`);
  if (!PUBLISHERS.includes(flags.publisher as PublisherChoice)) {
    throw new Error(`--publisher ${flags.publisher}: choose one of ${PUBLISHERS.join(', ')}`);
  }
  const parallel = Number(flags.parallel);
  if (!Number.isInteger(parallel) || parallel < 1) throw new Error(`--parallel ${flags.parallel}: expected a whole number of at least 1`);
  // Without another destination the thin image goes into the local Docker daemon, as docker2cvmfs did.
  const load = flags.load ?? (!flags.push && !flags.outputFile);
  if (flags.json) log.level = Math.min(log.level, 1);
  const result = await makeThin({
    input: flags.inputReference!,
    output: flags.outputReference!,
    repository: flags.repository!,
    subdirectory: flags.subdirectory,
    registry: flags.registry,
    platform: flags.platform,
    publisher: flags.publisher as PublisherChoice,
    push: flags.push === true,
    outputFile: flags.outputFile,
    load,
    parallel,
  });
  if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const published = result.layers.filter((layer) => layer.state === 'published').length;
    process.stdout.write(`${result.input} -> ${flags.outputReference}: ${result.layers.length} layers in ${result.repository} (${published} published, ${result.layers.length - published} already there)\n`);
  }
}
