/** What the runner tells a reporter (Ink dashboard, plain progress lines). */
import type { RunSummary } from '../metrics/records.js';
import type { LiveRunState } from './live-state.js';

export interface BenchReporter {
  /** once, before anything runs */
  start(info: { name: string; description: string; plannedRuns: string[]; outDir: string }): void;
  /** a free-form progress or warning line */
  log(line: string): void;
  /** a run (variant, or variant@level) begins; the reporter may poll `live` until runFinished */
  runStarted(live: LiveRunState): void;
  runFinished(summary: RunSummary, live: LiveRunState): void;
  /** after the last run; the dashboard unmounts here */
  stop(): Promise<void>;
}
