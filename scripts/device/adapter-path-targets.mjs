#!/usr/bin/env node
// Writes bench/results/adapter-path-targets.json (issue #11, must-show 6) from one device run's outputs:
//   --load     adapter-load.json of bench/adapter-load/adapter_load_bench.cpp   (measure 1: slot load / pinned H2D ≥ 0.8)
//   --overlap  results.json of `tslora bench overlap-loading-h200`             (measure 2: churn TTFT p50 ≥ 40 % lower
//              with overlap on, counter level no more than 5 % worse)
//   --scale    results.json of `tslora bench adapter-scale-h200`               (measure 3: output tok/s at 1,000 adapters
//              ≥ 0.9 of the 8-adapter level)
//   --gpu-file the nvidia-smi CSV of the run (first data line names the GPU); --commit (default $TSLORA_GIT_COMMIT);
//   --date     the run's time when rewriting from saved inputs (default now)
//   --out      where to write (default bench/results/adapter-path-targets.json)
// A measure whose input is missing is written with value null and met false, with the reason.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const readJson = (key) => {
  const path = args.get(key);
  if (!path || !existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
};
const missing = (target, why, direction = '>=') => ({ value: null, target, direction, met: false, note: why });
const measure = (value, target, direction, extra = {}) => ({
  value: value === null || Number.isNaN(value) ? null : Number(value.toFixed(4)),
  target,
  direction,
  met: value !== null && !Number.isNaN(value) && (direction === '>=' ? value >= target : value <= target),
  ...extra,
});

function gpuName() {
  const path = args.get('gpu-file');
  if (path && existsSync(path)) {
    const lines = readFileSync(path, 'utf8').split('\n');
    const data = lines.find((l, i) => i > 0 && l.includes(','));
    if (data) return data.split(',')[0].trim();
  }
  return null;
}

const measures = {};
const load = readJson('load');
for (const rank of [16, 64]) {
  const row = load?.ranks?.find((r) => r.rank === rank);
  measures[`adapter_load_fraction_of_pinned_h2d_r${rank}`] = row
    ? measure(row.fraction, 0.8, '>=', {
        detail: { bytes: row.bytes, load_ms: row.load_ms, load_side_ms: row.load_side_ms, load_gbps: row.load_gbps, h2d_gbps: row.h2d_gbps,
          pinned: row.pinned, convert_ms: row.convert_ms, ...(row.fp32_load_ms >= 0 ? { fp32_load_ms_before: row.fp32_load_ms } : {}) },
      })
    : missing(0.8, 'adapter-load.json missing (the benchmark did not run)');
}

const overlap = readJson('overlap');
const ttftP50 = (results, run) => results?.summaries?.find((s) => s.run === run)?.ttft?.p50 ?? null;
const levelsOf = (results) => (results?.config?.levels ?? []).map((l) => l.name);
for (const level of overlap ? levelsOf(overlap) : ['churn-c1', 'churn-c2', 'churn-c4', 'counter']) {
  const off = ttftP50(overlap, `overlap-off@${level}`), on = ttftP50(overlap, `overlap-on@${level}`);
  const counter = level === 'counter';
  const key = counter ? 'overlap_counter_ttft_p50_on_over_off' : `overlap_${level}_ttft_p50_reduction`;
  if (off === null || on === null) {
    measures[key] = missing(counter ? 1.05 : 0.4, 'overlap-loading-h200 results missing for this level', counter ? '<=' : '>=');
    continue;
  }
  measures[key] = counter
    ? measure(on / off, 1.05, '<=', { detail: { ttft_p50_ms_off: off, ttft_p50_ms_on: on } })
    : measure(1 - on / off, 0.4, '>=', { detail: { ttft_p50_ms_off: off, ttft_p50_ms_on: on } });
}
if (overlap) measures.overlap_rounds = overlap.config?.rounds ?? null;

const scale = readJson('scale');
const tokPerS = (level) => scale?.summaries?.find((s) => s.level === level || s.run?.endsWith(`@${level}`))?.outputTokPerS ?? null;
const small = tokPerS('n8'), large = tokPerS('n1000');
measures.adapter_scale_tokps_1000_over_8 =
  small !== null && large !== null
    ? measure(large / small, 0.9, '>=', {
        detail: Object.fromEntries(['n8', 'n64', 'n512', 'n1000'].map((l) => [`output_tok_per_s_${l}`, tokPerS(l)])),
      })
    : missing(0.9, 'adapter-scale-h200 results missing');

const out = args.get('out') ?? 'bench/results/adapter-path-targets.json';
const report = {
  gpu: gpuName() ?? load?.gpu ?? null,
  date: args.get('date') ?? new Date().toISOString(),  // --date: a rewrite from saved inputs keeps the run's time
  commit: args.get('commit') ?? process.env.TSLORA_GIT_COMMIT ?? null,
  measures,
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
const lines = Object.entries(measures)
  .filter(([, m]) => typeof m === 'object' && m !== null)
  .map(([k, m]) => `${m.met ? 'met ' : 'MISS'} ${k}: ${m.value ?? 'n/a'} (target ${m.direction} ${m.target})`);
console.log(`adapter-path targets (${report.gpu ?? 'unknown GPU'}) → ${out}\n${lines.join('\n')}`);
