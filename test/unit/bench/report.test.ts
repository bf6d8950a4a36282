import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestRecord } from '../../../src/bench/metrics/records.js';
import { summarizeRun } from '../../../src/bench/metrics/summarize.js';
import { comparisonGroups } from '../../../src/bench/report/comparison.js';
import { summaryTables } from '../../../src/bench/report/table.js';
import { writeOutputs } from '../../../src/bench/report/write-outputs.js';
import { resultsToJson, type BenchResults } from '../../../src/bench/report/results.js';
import { parseBenchConfig } from '../../../src/bench/config/load-config.js';
import { cdfChart } from '../../../src/bench/report/svg/cdf-chart.js';
import { barChart } from '../../../src/bench/report/svg/bar-chart.js';
import { niceTicks } from '../../../src/bench/report/svg/primitives.js';

function records(run: string, level: string | null, ttftMs: number, n = 20): RequestRecord[] {
  return Array.from({ length: n }, (_v, i) => ({
    run: level ? `${run}@${level}` : run, variant: run, level, round: 0, index: i, adapter: `a${i % 2}`, inputTokens: 16,
    requestedOutputTokens: 4, outputTokens: 4, sentAtMs: i * 10, ttftMs: ttftMs + i, e2eMs: ttftMs + i + 30, itlMs: [10, 10, 10], error: null,
  }));
}

const triton = records('triton', null, 100);
const csgmv = records('csgmv', null, 50);
const summaries = [
  summarizeRun({ run: 'triton', variant: 'triton', level: null }, triton, 1000),
  summarizeRun({ run: 'csgmv', variant: 'csgmv', level: null }, csgmv, 1000),
];

/** Tags open and close in order (a cheap well-formedness check without an XML parser). */
function assertBalancedSvg(svg: string): void {
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const stack: string[] = [];
  for (const match of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = match;
    if (selfClosing) continue;
    if (closing) assert.equal(stack.pop(), name, `unbalanced </${name}>`);
    else stack.push(name);
  }
  assert.deepEqual(stack, []);
  assert.doesNotMatch(svg, /NaN|undefined|Infinity/);
}

test('table: one column per run, ratios to the first run', () => {
  const text = summaryTables(summaries);
  assert.match(text, /triton \(A\)/);
  assert.match(text, /csgmv \(\/A\)/);
  // csgmv TTFT p50 ≈ 59.5 vs 109.5 → 0.54x
  const ttftRow = text.split('\n').find((line) => line.includes('TTFT p50'))!;
  assert.match(ttftRow, /0\.5\dx/);
  assert.doesNotMatch(text, /\u001b\[/); // no colour unless asked
  assert.match(summaryTables(summaries, { color: true }), /\u001b\[32m0\.5\dx/); // faster is green
});

test('comparison groups: variants side by side per level, or levels side by side for a one-variant sweep', () => {
  const perLevel = [
    summarizeRun({ run: 'a', variant: 'a', level: null }, records('a', null, 1), 1000),
    summarizeRun({ run: 'a@c1', variant: 'a', level: 'c1' }, records('a', 'c1', 1), 1000),
    summarizeRun({ run: 'b', variant: 'b', level: null }, records('b', null, 1), 1000),
    summarizeRun({ run: 'b@c1', variant: 'b', level: 'c1' }, records('b', 'c1', 1), 1000),
  ];
  assert.deepEqual(comparisonGroups(perLevel).map((g) => [g.title, g.runs.map((r) => r.run)]), [
    ['level c1', ['a@c1', 'b@c1']],
    ['all levels', ['a', 'b']],
  ]);
  const sweep = perLevel.filter((s) => s.variant === 'a');
  assert.deepEqual(comparisonGroups(sweep).map((g) => g.runs.map((r) => r.run)), [['a@c1']]);
});

test('SVG charts are well formed and carry their labels', () => {
  const cdf = cdfChart('TTFT', 'sub', [{ label: 'triton', samplesMs: triton.map((r) => r.ttftMs!) }, { label: 'csgmv <fast>', samplesMs: csgmv.map((r) => r.ttftMs!) }]);
  assertBalancedSvg(cdf);
  assert.match(cdf, /csgmv &lt;fast&gt;/);
  assert.equal(cdf.match(/<path /g)?.length, 2);
  const wide = cdfChart('wide', '', [{ label: 'x', samplesMs: [1, 10, 1000, 5000] }]);
  assert.match(wide, /log scale/);
  const bars = barChart('bars', '', ['triton', 'csgmv'], [{ label: 'p50', values: [10, 5] }, { label: 'p99', values: [20, null] }], 'ms');
  assertBalancedSvg(bars);
  assert.equal(bars.match(/<rect x=/g)?.length, 3 + 2); // 3 bars + 2 legend boxes
  assertBalancedSvg(cdfChart('empty', '', []));
  assert.deepEqual(niceTicks(0, 97), [0, 20, 40, 60, 80, 100]);
});

test('writeOutputs writes results.json, report.md and four charts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-out-'));
  const config = parseBenchConfig({ name: 'unit', variants: [{ name: 'triton' }, { name: 'csgmv' }] }, 'inline');
  const results: BenchResults = {
    tool: 'tslora bench', schemaVersion: 1, name: 'unit', description: 'unit test', startedAt: 'start', finishedAt: 'end', configPath: 'inline', config,
    environment: { hostname: 'h', os: 'linux', cpu: 'Test CPU', cpuCores: 2, memoryGiB: 4, gpus: [], node: 'v20', tslora: '0.1.0', gitCommit: 'abc', gitDirty: false, argv: [], loadAverage: { start: 5, end: 6.5 } },
    model: { description: 'demo', vocabSize: 300, adapters: [{ name: 'a0', path: '/x', rank: 8 }] },
    launches: [{ variant: 'triton', round: 0, argv: ['node', 'tslora', 'serve'], logPath: null, serverInfo: null }],
    runIds: ['triton', 'csgmv'], summaries, checks: [{ source: 'csgmv.ttft_p50 < triton.ttft_p50', passed: true, left: 1, right: 2, message: 'csgmv.ttft_p50 < triton.ttft_p50: 1 < 2 ok' }],
    records: [...triton, ...csgmv],
  };
  const written = writeOutputs(dir, results);
  const parsed = JSON.parse(readFileSync(written.resultsPath, 'utf8')) as BenchResults;
  assert.equal(parsed.records.length, 40);
  assert.equal(parsed.summaries[1].run, 'csgmv');
  const report = readFileSync(written.reportPath, 'utf8');
  assert.match(report, /# tslora bench: unit/);
  assert.match(report, /Test CPU \(2 cores\)/);
  assert.match(report, /5 at the start, 6.5 at the end, on 2 cores — the machine was shared/);
  assert.match(report, /\| TTFT p50 \| [\d.]+ ms \| [\d.]+ ms \| 0\.5\dx \|/);
  assert.match(report, /✅ `csgmv.ttft_p50 < triton.ttft_p50/);
  assert.match(report, /!\[TTFT CDF per run\]\(ttft-cdf\.svg\)/);
  for (const chart of written.charts) {
    assert.ok(existsSync(chart));
    assertBalancedSvg(readFileSync(chart, 'utf8'));
  }
});

test('with several rounds the report adds per-round medians for every variant', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-rounds-'));
  const config = { ...parseBenchConfig({ name: 'r', variants: [{ name: 'triton' }, { name: 'csgmv' }] }, 'inline'), rounds: 2 };
  const roundRecords = [
    ...records('triton', null, 100, 3).map((r) => ({ ...r, round: 0 })),
    ...records('csgmv', null, 50, 3).map((r) => ({ ...r, round: 0 })),
    ...records('triton', null, 200, 3).map((r) => ({ ...r, round: 1 })),
    ...records('csgmv', null, 10, 3).map((r) => ({ ...r, round: 1 })),
  ];
  const results: BenchResults = {
    tool: 'tslora bench', schemaVersion: 1, name: 'r', description: '', startedAt: 's', finishedAt: 'e', configPath: 'inline', config,
    environment: { hostname: 'h', os: 'linux', cpu: 'CPU', cpuCores: 2, memoryGiB: 4, gpus: [], node: 'v20', tslora: '0.1.0', gitCommit: null, gitDirty: null, argv: [], loadAverage: { start: 0.5, end: 0.4 } },
    model: { description: 'demo', vocabSize: 300, adapters: [] }, launches: [], runIds: ['triton', 'csgmv'], summaries, checks: [], records: roundRecords,
  };
  const report = readFileSync(writeOutputs(dir, results).reportPath, 'utf8');
  assert.match(report, /### Per round \(medians, ms\)/);
  assert.match(report, /\| level \| round \| triton TTFT \| triton E2E \| csgmv TTFT \| csgmv E2E \|/);
  assert.match(report, /\| all \| 1 \| 101 \| 131 \| 51 \| 81 \|/); // medians of 100..102 and 50..52 (+30 for E2E)
  assert.match(report, /\| all \| 2 \| 201 \| 231 \| 11 \| 41 \|/);
  assert.doesNotMatch(report, /machine was shared/); // load 0.5 on 2 cores
});

test('results JSON: one line per request record, timings kept to the microsecond, NaN as null, everything else intact', () => {
  const config = parseBenchConfig({ name: 'j', variants: [{ name: 'a' }] }, 'inline');
  const recs = records('a', 'c1', 100, 3).map((r, i) => ({ ...r, ttftMs: 100.123456789 + i, itlMs: [1.0004, 2.99951, Number.NaN] }));
  const results: BenchResults = {
    tool: 'tslora bench', schemaVersion: 1, name: 'j', description: '', startedAt: 's', finishedAt: 'e', configPath: 'inline', config,
    environment: { hostname: 'h', os: 'linux', cpu: 'CPU', cpuCores: 2, memoryGiB: 4, gpus: ['NVIDIA H200, 580.1, 143771 MiB'], node: 'v20', tslora: '0.1.0', gitCommit: null, gitDirty: null, argv: [], loadAverage: { start: 0.123456, end: null } },
    model: { description: 'demo', vocabSize: 300, adapters: [] }, launches: [], runIds: ['a'], summaries, checks: [], records: recs,
  };
  const text = resultsToJson(results);
  const parsed = JSON.parse(text) as BenchResults;
  assert.equal(parsed.records.length, 3);
  assert.equal(parsed.records[1].ttftMs, 101.123);
  assert.deepEqual(parsed.records[0].itlMs, [1, 3, null]);
  assert.deepEqual(parsed.records[2].adapter, recs[2].adapter);
  assert.equal(parsed.environment.loadAverage.start, 0.123456); // only records are rounded
  assert.deepEqual(parsed.summaries, JSON.parse(JSON.stringify(summaries)));
  const recordLines = text.split('\n').filter((line) => line.trimStart().startsWith('{"run":'));
  assert.equal(recordLines.length, 3);
  const empty = JSON.parse(resultsToJson({ ...results, records: [] })) as BenchResults;
  assert.deepEqual(empty.records, []);
});
