import { openSync, writeSync } from 'node:fs';
import { formatWithOptions } from 'node:util';
import { createConsola, type ConsolaReporter } from 'consola';

// Log files (the driver's, its repository mounts', CI output) get one timestamped line per
// record, which is what debugging needs; a terminal gets consola's own layout. The plain lines
// also spare each short-lived process consola's start-up cost of measuring and dating them.
function plainLine(record: Parameters<ConsolaReporter['log']>[0]): string {
  const text = formatWithOptions({ colors: false }, ...record.args);
  const tag = record.tag ? ` [${record.tag}]` : '';
  return `${new Date().toISOString()} ${record.type.toUpperCase()}${tag} ${text}\n`;
}

const plainLines: ConsolaReporter = {
  log(record) {
    (record.level < 2 ? process.stderr : process.stdout).write(plainLine(record));
  },
};

// One logger for the whole process; `--debug` raises the level in main.
export const log = createConsola({
  level: 3,
  formatOptions: { date: true, colors: false },
  ...(process.stdout.isTTY ? {} : { reporters: [plainLines] }),
});

export function enableDebug(): void {
  log.level = 4;
}

/** Sends every further record to `file` (appended), for a process whose output went elsewhere. */
export function logToFile(file: string): void {
  const fd = openSync(file, 'a');
  log.setReporters([{ log: (record) => writeSync(fd, plainLine(record)) }]);
}
