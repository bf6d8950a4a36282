/**
 * Which runs are compared side by side, and the rows of that comparison: each metric for every run, plus the
 * ratio to the group's first run (B/A). Shared by the terminal table and the markdown report.
 */
import type { RunSummary } from '../metrics/records.js';
import { ITL_RESOLUTION_MS, metricValue } from '../metrics/summarize.js';

export interface ComparisonGroup {
  title: string;
  runs: RunSummary[];
}

export interface MetricRow {
  metric: string;
  label: string;
  unit: 'ms' | '/s' | '' | 'x' | '%';
  /** lower is better (latency, errors) */
  lowerIsBetter: boolean;
}

export const TABLE_METRICS: MetricRow[] = [
  { metric: 'ttft_p50', label: 'TTFT p50', unit: 'ms', lowerIsBetter: true },
  { metric: 'ttft_p90', label: 'TTFT p90', unit: 'ms', lowerIsBetter: true },
  { metric: 'ttft_p99', label: 'TTFT p99', unit: 'ms', lowerIsBetter: true },
  { metric: 'itl_p50', label: 'ITL p50', unit: 'ms', lowerIsBetter: true },
  { metric: 'itl_p99', label: 'ITL p99', unit: 'ms', lowerIsBetter: true },
  { metric: 'e2e_p50', label: 'E2E p50', unit: 'ms', lowerIsBetter: true },
  { metric: 'e2e_p99', label: 'E2E p99', unit: 'ms', lowerIsBetter: true },
  { metric: 'tpot_p50', label: 'TPOT p50', unit: 'ms', lowerIsBetter: true },
  { metric: 'output_tok_s', label: 'output tok/s', unit: '/s', lowerIsBetter: false },
  { metric: 'req_s', label: 'requests/s', unit: '/s', lowerIsBetter: false },
  { metric: 'slo_ttft', label: 'TTFT SLO met', unit: '%', lowerIsBetter: false },
  { metric: 'errors', label: 'errors', unit: '', lowerIsBetter: true },
  { metric: 'adapter_loads', label: 'adapter loads', unit: '', lowerIsBetter: true },
];

/**
 * Several variants: one group per level (variants side by side at equal load), plus the overall group when
 * there are levels. One variant with levels (a sweep): one group, levels side by side.
 */
export function comparisonGroups(summaries: RunSummary[]): ComparisonGroup[] {
  const variants = [...new Set(summaries.map((s) => s.variant))];
  const levels = [...new Set(summaries.map((s) => s.level).filter((l): l is string => l !== null))];
  if (levels.length === 0) return [{ title: 'all requests', runs: summaries }];
  if (variants.length === 1) return [{ title: `${variants[0]} across levels`, runs: summaries.filter((s) => s.level !== null) }];
  const groups = levels.map((level) => ({ title: `level ${level}`, runs: summaries.filter((s) => s.level === level) }));
  groups.push({ title: 'all levels', runs: summaries.filter((s) => s.level === null) });
  return groups.filter((g) => g.runs.length > 0);
}

export function formatValue(value: number | null, unit: MetricRow['unit']): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  if (unit === '%') return `${(value * 100).toFixed(1)}%`;
  if (unit === '') return String(Math.round(value));
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)}${unit === 'ms' ? ' ms' : ''}`;
}

export function ratio(value: number | null, baseline: number | null): number | null {
  if (value === null || baseline === null || !Number.isFinite(value) || !Number.isFinite(baseline) || baseline === 0) return null;
  return value / baseline;
}

export function formatRatio(r: number | null): string {
  return r === null ? '' : `${r.toFixed(2)}x`;
}

export const BELOW_RESOLUTION = `< ${ITL_RESOLUTION_MS} ms (burst)`;

/** A note for runs whose token gaps were partly below what the client can time (events in one socket read). */
export function itlResolutionNote(run: RunSummary): string | null {
  const share = run.itlSameReadShare;
  if (share === null || (share < 0.05 && !(run.itl.p50 < ITL_RESOLUTION_MS))) return null;
  return `${run.run}: ${(share * 100).toFixed(0)}% of the ${run.itl.count} token gaps came within one socket read ` +
    `(the server sent those tokens in a burst); gaps under ${ITL_RESOLUTION_MS} ms are below what the client can time.`;
}

/** Cells of one metric row: value of each run, and for runs after the first "value (ratio)". */
export function rowCells(row: MetricRow, runs: RunSummary[]): { text: string; ratio: number | null }[] {
  const baseline = runs.length ? metricValue(runs[0], row.metric) : null;
  return runs.map((run, i) => {
    const value = metricValue(run, row.metric);
    // An ITL under the client's resolution is a burst, not a speed: say so rather than print 0.00 (and no ratio).
    if (row.metric.startsWith('itl_') && value !== null && value < ITL_RESOLUTION_MS) return { text: BELOW_RESOLUTION, ratio: null };
    const r = i === 0 || (baseline !== null && row.metric.startsWith('itl_') && baseline < ITL_RESOLUTION_MS) ? null : ratio(value, baseline);
    return { text: formatValue(value, row.unit), ratio: r };
  });
}
