import { formatWithOptions } from 'node:util';
import { createConsola, type ConsolaReporter } from 'consola';

// Log files (the driver's, its repository mounts', CI output) get one timestamped line per
// record, which is what debugging needs; a terminal gets consola's own layout. The plain lines
// also spare each short-lived process consola's start-up cost of measuring and dating them.
const plainLines: ConsolaReporter = {
  log(record) {
    const text = formatWithOptions({ colors: false }, ...record.args);
    const tag = record.tag ? ` [${record.tag}]` : '';
    const line = `${new Date().toISOString()} ${record.type.toUpperCase()}${tag} ${text}\n`;
    (record.level < 2 ? process.stderr : process.stdout).write(line);
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
