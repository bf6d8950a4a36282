/** The machine-readable result of a bench run (results.json, and stdout with --json). */
import type { BenchConfig } from '../config/schema.js';
import type { CheckResult } from '../check/check-expression.js';
import type { RequestRecord, RunSummary } from '../metrics/records.js';
import type { BenchEnvironment } from '../runner/environment.js';
import type { BenchRunOutput } from '../runner/run-bench.js';

export interface BenchResults {
  tool: 'tslora bench';
  schemaVersion: 1;
  name: string;
  description: string;
  startedAt: string;
  finishedAt: string;
  configPath: string;
  config: BenchConfig;
  environment: BenchEnvironment;
  model: BenchRunOutput['model'];
  launches: BenchRunOutput['launches'];
  runIds: string[];
  summaries: RunSummary[];
  checks: CheckResult[];
  records: RequestRecord[];
}

/** JSON cannot hold NaN/Infinity: they become null. */
export function resultsToJson(results: BenchResults): string {
  return JSON.stringify(results, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2);
}
