import { log } from '../core/log.ts';

// Download progress: one redrawn line on a terminal, a line per quarter otherwise (logs).

export interface ProgressReporter {
  update(name: string, done: number): void;
  done(): void;
}

interface Item {
  name: string;
  total: number;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export function progressReporter(items: readonly Item[], stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  const totals = new Map(items.map((item) => [item.name, item.total]));
  const done = new Map(items.map((item) => [item.name, 0]));
  const reportedQuarter = new Map(items.map((item) => [item.name, 0]));
  const all = items.reduce((sum, item) => sum + item.total, 0);
  let lastDraw = 0;
  return {
    update(name, bytes) {
      done.set(name, bytes);
      if (stream.isTTY) {
        const now = Date.now();
        if (now - lastDraw < 100 && bytes < (totals.get(name) ?? 0)) return;
        lastDraw = now;
        const sum = [...done.values()].reduce((a, b) => a + b, 0);
        stream.write(`\r\x1b[Kdownloading ${items.length} layers: ${megabytes(sum)} of ${megabytes(all)} (${all ? Math.floor((sum / all) * 100) : 100}%)`);
        return;
      }
      const quarter = Math.floor((bytes / Math.max(1, totals.get(name) ?? 1)) * 4);
      if (quarter > (reportedQuarter.get(name) ?? 0)) {
        reportedQuarter.set(name, quarter);
        log.info(`layer ${name}: ${megabytes(bytes)} of ${megabytes(totals.get(name) ?? 0)} downloaded`);
      }
    },
    done() {
      if (stream.isTTY && items.length > 0) stream.write('\n');
    },
  };
}
