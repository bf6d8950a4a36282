/** Without a TTY (or with --json / --no-dashboard): timestamped progress lines on stderr, every few seconds. */
import type { RunSummary } from '../metrics/records.js';
import { runLabel, type LiveRunState } from '../runner/live-state.js';
import type { BenchReporter } from '../runner/reporter.js';
import { progressLine, summaryLine } from './format.js';

export class PlainReporter implements BenchReporter {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
    private readonly intervalMs = 2000,
  ) {}

  start(info: { name: string; description: string; plannedRuns: string[]; outDir: string }): void {
    this.write(`tslora bench ${info.name}: runs ${info.plannedRuns.join(', ')} → ${info.outDir}`);
  }

  log(line: string): void {
    this.write(`  ${line}`);
  }

  runStarted(live: LiveRunState): void {
    this.clear();
    this.write(`[${runLabel(live)}] ${live.message || 'starting'}`);
    this.timer = setInterval(() => {
      if (live.phase === 'running') this.write(progressLine(live));
    }, this.intervalMs);
    this.timer.unref();
  }

  runFinished(summary: RunSummary, live: LiveRunState): void {
    this.clear();
    this.write(summaryLine({ ...summary, run: runLabel(live) }));
  }

  async stop(): Promise<void> {
    this.clear();
  }

  private clear(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
