/** Aggregates request records into percentiles (hdr-histogram-js, µs resolution) and throughput figures. */
import * as hdr from 'hdr-histogram-js';
import type { EngineStepFigures, LatencyStats, LoraCounters, RequestRecord, RunSummary } from './records.js';

const EMPTY_STATS: LatencyStats = { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };

/** Percentiles of millisecond samples; recorded in microseconds with 3 significant digits. */
export function latencyStats(samplesMs: readonly number[]): LatencyStats {
  const finite = samplesMs.filter((v) => Number.isFinite(v) && v >= 0);
  if (finite.length === 0) return { ...EMPTY_STATS };
  const histogram = hdr.build({ numberOfSignificantValueDigits: 3 });
  let sum = 0;
  for (const ms of finite) {
    histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
    sum += ms;
  }
  const max = Math.max(...finite);
  // hdr reports the top of a value's bucket (≤ 0.1 % high); a percentile never exceeds the real maximum
  const toMs = (us: number) => Math.min(us / 1000, max);
  const stats: LatencyStats = {
    count: finite.length,
    mean: sum / finite.length,
    p50: toMs(histogram.getValueAtPercentile(50)),
    p90: toMs(histogram.getValueAtPercentile(90)),
    p99: toMs(histogram.getValueAtPercentile(99)),
    max,
  };
  histogram.destroy();
  return stats;
}

/** Gaps below this are read-to-read processing time on the client, not the server's spacing of tokens. */
export const ITL_RESOLUTION_MS = 0.01;

function itlSameReadShare(ok: readonly RequestRecord[]): number | null {
  const gaps = ok.reduce((n, r) => n + r.itlMs.length, 0);
  return gaps === 0 ? null : ok.reduce((n, r) => n + (r.itlSameRead ?? 0), 0) / gaps;
}

export const NO_LORA_COUNTERS: LoraCounters = { adapterLoads: null, evictions: null, slotsUsed: null, slotsTotal: null, deltas: {} };

export function summarizeRun(
  ids: { run: string; variant: string; level: string | null },
  records: readonly RequestRecord[],
  sloTtftMs: number,
  lora: LoraCounters = NO_LORA_COUNTERS,
  /** measured window in seconds when records span several windows (levels, rounds); default first send → last end */
  windowS?: number,
  engineStep: EngineStepFigures | null = null,
): RunSummary {
  const ok = records.filter((r) => r.error === null);
  const outputTokens = ok.reduce((n, r) => n + r.outputTokens, 0);
  const inputTokens = ok.reduce((n, r) => n + r.inputTokens, 0);
  const start = records.length ? Math.min(...records.map((r) => r.sentAtMs)) : 0;
  const end = records.length ? Math.max(...records.map((r) => r.sentAtMs + r.e2eMs)) : 0;
  const durationS = Math.max(1e-9, windowS ?? (end - start) / 1000);
  const tpotSamples = ok.filter((r) => r.ttftMs !== null && r.outputTokens > 1).map((r) => (r.e2eMs - (r.ttftMs as number)) / (r.outputTokens - 1));
  const sloHits = ok.filter((r) => r.ttftMs !== null && r.ttftMs <= sloTtftMs).length;
  return {
    ...ids,
    requests: records.length,
    completed: ok.length,
    errors: records.length - ok.length,
    errorRate: records.length ? (records.length - ok.length) / records.length : 0,
    durationS: records.length ? durationS : 0,
    reqPerS: records.length ? ok.length / durationS : 0,
    outputTokPerS: records.length ? outputTokens / durationS : 0,
    totalTokPerS: records.length ? (outputTokens + inputTokens) / durationS : 0,
    outputTokens,
    ttft: latencyStats(ok.map((r) => r.ttftMs ?? NaN)),
    itl: latencyStats(ok.flatMap((r) => r.itlMs)),
    itlSameReadShare: itlSameReadShare(ok),
    e2e: latencyStats(ok.map((r) => r.e2eMs)),
    tpot: latencyStats(tpotSamples),
    sloTtftAttainment: records.length ? sloHits / records.length : 0,
    adapterTtftP99Spread: adapterSpread(ok),
    lora,
    engineStep,
  };
}

function adapterSpread(records: readonly RequestRecord[]): number | null {
  const byAdapter = new Map<string, number[]>();
  for (const r of records) {
    if (r.adapter === null || r.ttftMs === null) continue;
    const list = byAdapter.get(r.adapter) ?? [];
    list.push(r.ttftMs);
    byAdapter.set(r.adapter, list);
  }
  if (byAdapter.size < 2) return null;
  const p99s = [...byAdapter.values()].map((samples) => latencyStats(samples).p99);
  const min = Math.min(...p99s);
  return min > 0 ? Math.max(...p99s) / min : null;
}

/** Metric names usable in --check expressions and tables, in ms / per-second units. */
export const METRIC_NAMES = [
  ...['ttft', 'itl', 'e2e', 'tpot'].flatMap((m) => ['mean', 'p50', 'p90', 'p99', 'max'].map((p) => `${m}_${p}`)),
  'output_tok_s',
  'total_tok_s',
  'req_s',
  'errors',
  'error_rate',
  'requests',
  'completed',
  'adapter_loads',
  'evictions',
  'slo_ttft',
  'adapter_ttft_spread',
] as const;

export function metricValue(summary: RunSummary, metric: string): number | null {
  const latency = /^(ttft|itl|e2e|tpot)_(mean|p50|p90|p99|max)$/.exec(metric);
  if (latency) return summary[latency[1] as 'ttft'][latency[2] as 'p50'];
  switch (metric) {
    case 'output_tok_s':
      return summary.outputTokPerS;
    case 'total_tok_s':
      return summary.totalTokPerS;
    case 'req_s':
      return summary.reqPerS;
    case 'errors':
      return summary.errors;
    case 'error_rate':
      return summary.errorRate;
    case 'requests':
      return summary.requests;
    case 'completed':
      return summary.completed;
    case 'adapter_loads':
      return summary.lora.adapterLoads;
    case 'evictions':
      return summary.lora.evictions;
    case 'slo_ttft':
      return summary.sloTtftAttainment;
    case 'adapter_ttft_spread':
      return summary.adapterTtftP99Spread;
    default:
      return null;
  }
}
