/** Writes results.json, report.md and the SVG charts into the output directory. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeHardware } from '../runner/environment.js';
import { markdownReport } from './markdown.js';
import { resultsToJson, type BenchResults } from './results.js';
import { barChart } from './svg/bar-chart.js';
import { cdfChart } from './svg/cdf-chart.js';

export interface WrittenOutputs {
  resultsPath: string;
  reportPath: string;
  charts: string[];
}

/** The runs drawn in the charts: every level run when there are levels, else every variant. */
function chartedRuns(results: BenchResults) {
  const levelRuns = results.summaries.filter((s) => s.level !== null);
  return levelRuns.length ? levelRuns : results.summaries;
}

export function writeOutputs(outDir: string, results: BenchResults): WrittenOutputs {
  mkdirSync(outDir, { recursive: true });
  const runs = chartedRuns(results);
  const subtitle = `${results.name} · ${results.model.description} · ${describeHardware(results.environment)}`.slice(0, 140);
  const recordsOf = (run: string) => results.records.filter((r) => r.error === null && r.run === run);
  const charts: { file: string; caption: string; svg: string }[] = [
    {
      file: 'ttft-cdf.svg',
      caption: 'TTFT CDF per run',
      svg: cdfChart('Time to first token (CDF)', subtitle, runs.map((s) => ({ label: s.run, samplesMs: recordsOf(s.run).map((r) => r.ttftMs ?? NaN).filter(Number.isFinite) })), 'TTFT (ms)'),
    },
    {
      file: 'e2e-cdf.svg',
      caption: 'E2E latency CDF per run',
      svg: cdfChart('End-to-end latency (CDF)', subtitle, runs.map((s) => ({ label: s.run, samplesMs: recordsOf(s.run).map((r) => r.e2eMs) })), 'E2E latency (ms)'),
    },
    {
      file: 'ttft-bars.svg',
      caption: 'TTFT percentiles per run',
      svg: barChart('TTFT percentiles', subtitle, runs.map((s) => s.run), [
        { label: 'p50', values: runs.map((s) => s.ttft.p50) },
        { label: 'p90', values: runs.map((s) => s.ttft.p90) },
        { label: 'p99', values: runs.map((s) => s.ttft.p99) },
      ], 'TTFT (ms)'),
    },
    {
      file: 'throughput-bars.svg',
      caption: 'Output tokens per second per run',
      svg: barChart('Output throughput', subtitle, runs.map((s) => s.run), [{ label: 'output tok/s', values: runs.map((s) => s.outputTokPerS) }], 'output tokens / s'),
    },
  ];
  for (const chart of charts) writeFileSync(join(outDir, chart.file), chart.svg);
  const resultsPath = join(outDir, 'results.json');
  writeFileSync(resultsPath, resultsToJson(results));
  const reportPath = join(outDir, 'report.md');
  writeFileSync(reportPath, markdownReport(results, charts));
  return { resultsPath, reportPath, charts: charts.map((c) => join(outDir, c.file)) };
}
