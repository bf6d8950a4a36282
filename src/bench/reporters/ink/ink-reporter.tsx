/** The TTY reporter: re-renders the Dashboard from the live state a few times per second, on stderr. */
import { performance } from 'node:perf_hooks';
import { render, type Instance } from 'ink';
import type { RunSummary } from '../../metrics/records.js';
import { runLabel, type LiveRunState } from '../../runner/live-state.js';
import type { BenchReporter } from '../../runner/reporter.js';
import { Dashboard, type DashboardSnapshot } from './dashboard.js';

export class InkReporter implements BenchReporter {
  private instance: Instance | null = null;
  private timer: NodeJS.Timeout | null = null;
  private planned: string[] = [];
  private readonly snapshot: DashboardSnapshot = { title: '', outDir: '', finished: [], live: null, pending: [], lastLog: '', now: 0, tick: 0 };

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  start(info: { name: string; description: string; plannedRuns: string[]; outDir: string }): void {
    this.planned = info.plannedRuns;
    Object.assign(this.snapshot, { title: info.name, outDir: info.outDir, pending: [...info.plannedRuns] });
    this.instance = render(<Dashboard snapshot={{ ...this.snapshot }} />, { stdout: this.stream, patchConsole: false, exitOnCtrlC: false });
    this.timer = setInterval(() => this.redraw(), 150);
  }

  log(line: string): void {
    this.snapshot.lastLog = line;
  }

  runStarted(live: LiveRunState): void {
    this.snapshot.live = live;
    const done = new Set(this.snapshot.finished.map((s) => s.run));
    const suffix = live.rounds > 1 ? ` · round ${live.round + 1}/${live.rounds}` : '';
    this.snapshot.pending = this.planned
      .filter((id) => id.includes('@') === live.run.includes('@'))
      .map((id) => `${id}${suffix}`)
      .filter((label) => label !== runLabel(live) && !done.has(label));
    this.redraw();
  }

  runFinished(summary: RunSummary, live: LiveRunState): void {
    // later rounds repeat run ids: the label (with the round) keeps the rows apart
    this.snapshot.finished = [...this.snapshot.finished, { ...summary, run: runLabel(live) }];
    this.snapshot.live = null;
    this.redraw();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.snapshot.live = null;
    this.snapshot.pending = [];
    this.snapshot.lastLog = '';
    this.redraw();
    this.instance?.unmount();
    await this.instance?.waitUntilExit().catch(() => undefined);
    this.instance = null;
  }

  private redraw(): void {
    if (!this.instance) return;
    this.snapshot.now = performance.now();
    this.snapshot.tick++;
    this.instance.rerender(<Dashboard snapshot={{ ...this.snapshot, finished: [...this.snapshot.finished] }} />);
  }
}
