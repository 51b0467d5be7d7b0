import { createConsola } from 'consola';

// One logger for the whole process; `--debug` raises the level in main.
export const log = createConsola({ level: 3, formatOptions: { date: true, colors: false } });

export function enableDebug(): void {
  log.level = 4;
}
