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
  /** present when the run was interrupted (Ctrl-C): what is here was measured before that */
  partial?: { reason: string; at: string };
}

/** JSON cannot hold NaN/Infinity: they become null. */
const finiteOrNull = (_key: string, value: unknown): unknown => (typeof value === 'number' && !Number.isFinite(value) ? null : value);

/** Request timings are milliseconds from performance.now(): microseconds are all the precision they carry. */
const recordNumber = (_key: string, value: unknown): unknown => {
  if (typeof value !== 'number') return value;
  if (!Number.isFinite(value)) return null;
  return Number.isInteger(value) ? value : Math.round(value * 1000) / 1000;
};

/**
 * Indented JSON, except that each request record takes one line: a GPU run has thousands of records with dozens
 * of inter-token gaps each, which one-number-per-line indentation would blow up to many megabytes.
 */
export function resultsToJson(results: BenchResults): string {
  const { records, ...rest } = results;
  const head = JSON.stringify({ ...rest, records: [] }, finiteOrNull, 2);
  if (records.length === 0) return head;
  const lines = records.map((record) => `    ${JSON.stringify(record, recordNumber)}`).join(',\n');
  const marker = '"records": []\n}';
  return `${head.slice(0, head.length - marker.length)}"records": [\n${lines}\n  ]\n}`;
}
