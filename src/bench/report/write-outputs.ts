/** Writes results.json, report.md and the SVG charts into the output directory. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeHardware } from '../runner/environment.js';
import { markdownReport } from './markdown.js';
import { resultsToJson, type BenchResults } from './results.js';
import { barChart } from './svg/bar-chart.js';
import { cdfChart } from './svg/cdf-chart.js';
import { DASHES, PALETTE } from './svg/primitives.js';
import type { RequestRecord } from '../metrics/records.js';

export interface WrittenOutputs {
  resultsPath: string;
  reportPath: string;
  charts: string[];
}

/** The runs drawn in the charts: every level run when there are levels, else every variant. */
function chartedRuns(results: BenchResults) {
  const levelRuns = results.summaries.filter((s) => s.level !== null);
  if (levelRuns.length === 0) return results.summaries;
  // level by level, variants side by side: the A/B pairs stand next to each other
  const levels = [...new Set(levelRuns.map((s) => s.level))];
  return [...levelRuns].sort((a, b) => levels.indexOf(a.level) - levels.indexOf(b.level));
}

export function writeOutputs(outDir: string, results: BenchResults): WrittenOutputs {
  mkdirSync(outDir, { recursive: true });
  const runs = chartedRuns(results);
  const subtitle = `${results.name} · ${results.model.description} · ${describeHardware(results.environment)}`;
  const recordsOf = (run: string) => results.records.filter((r) => r.error === null && r.run === run);
  // colour = variant, dash/shade = level, so a sweep of two variants stays readable
  const variants = [...new Set(runs.map((s) => s.variant))];
  const levels = [...new Set(runs.map((s) => s.level))];
  const colorOf = (variant: string) => PALETTE[variants.indexOf(variant) % PALETTE.length];
  const styled = variants.length > 1 && levels.length > 1;
  const cdfSeries = (pick: (r: RequestRecord) => number) =>
    runs.map((s) => ({
      label: s.run,
      samplesMs: recordsOf(s.run).map(pick).filter(Number.isFinite),
      ...(styled ? { color: colorOf(s.variant), dash: DASHES[levels.indexOf(s.level) % DASHES.length] } : {}),
    }));
  const barOptions = variants.length > 1 ? { categoryColors: runs.map((s) => colorOf(s.variant)) } : {};
  const charts: { file: string; caption: string; svg: string }[] = [
    {
      file: 'ttft-cdf.svg',
      caption: 'TTFT CDF per run',
      svg: cdfChart('Time to first token (CDF)', subtitle, cdfSeries((r) => r.ttftMs ?? NaN), 'TTFT (ms)'),
    },
    {
      file: 'e2e-cdf.svg',
      caption: 'E2E latency CDF per run',
      svg: cdfChart('End-to-end latency (CDF)', subtitle, cdfSeries((r) => r.e2eMs), 'E2E latency (ms)'),
    },
    {
      file: 'ttft-bars.svg',
      caption: 'TTFT percentiles per run',
      svg: barChart('TTFT percentiles', subtitle, runs.map((s) => s.run), [
        { label: 'p50', values: runs.map((s) => s.ttft.p50) },
        { label: 'p90', values: runs.map((s) => s.ttft.p90) },
        { label: 'p99', values: runs.map((s) => s.ttft.p99) },
      ], 'TTFT (ms)', barOptions),
    },
    {
      file: 'throughput-bars.svg',
      caption: 'Output tokens per second per run',
      svg: barChart('Output throughput', subtitle, runs.map((s) => s.run), [{ label: 'output tok/s', values: runs.map((s) => s.outputTokPerS) }], 'output tokens / s', barOptions),
    },
  ];
  for (const chart of charts) writeFileSync(join(outDir, chart.file), chart.svg);
  const resultsPath = join(outDir, 'results.json');
  writeFileSync(resultsPath, resultsToJson(results));
  const reportPath = join(outDir, 'report.md');
  writeFileSync(reportPath, markdownReport(results, charts));
  return { resultsPath, reportPath, charts: charts.map((c) => join(outDir, c.file)) };
}
