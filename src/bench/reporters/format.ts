/** Short progress and summary lines shared by the plain reporter and the dashboard. */
import { performance } from 'node:perf_hooks';
import type { RunSummary } from '../metrics/records.js';
import { ITL_RESOLUTION_MS } from '../metrics/summarize.js';
import { BELOW_RESOLUTION } from '../report/comparison.js';
import { runLabel, windowPercentile, type LiveRunState } from '../runner/live-state.js';

/** An ITL figure: below the client's resolution it is a burst, not a speed. */
export function itl(value: number | null | undefined): string {
  return value !== null && value !== undefined && value < ITL_RESOLUTION_MS ? BELOW_RESOLUTION : ms(value);
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

export function rate(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

/** Live throughput of the measured phase so far. */
export function liveTokensPerS(live: LiveRunState, now = performance.now()): number | null {
  if (!live.startedAt) return null;
  const seconds = (now - live.startedAt) / 1000;
  return seconds > 0.2 ? live.outputTokens / seconds : null;
}

export function liveFigures(live: LiveRunState, now = performance.now()) {
  return {
    ttftP50: windowPercentile(live.recentTtftMs, 50),
    ttftP90: windowPercentile(live.recentTtftMs, 90),
    ttftP99: windowPercentile(live.recentTtftMs, 99),
    itlP50: windowPercentile(live.recentItlMs, 50),
    itlP99: windowPercentile(live.recentItlMs, 99),
    tokensPerS: liveTokensPerS(live, now),
  };
}

export function progressLine(live: LiveRunState, now = performance.now()): string {
  const f = liveFigures(live, now);
  const slots = live.slotsTotal !== null ? `, slots ${live.slotsUsed ?? '?'}/${live.slotsTotal}` : '';
  return (
    `[${runLabel(live)}] ${live.phase} ${live.done}/${live.total} done, ${live.inFlight} in flight, ` +
    `TTFT p50 ${ms(f.ttftP50)} p99 ${ms(f.ttftP99)}, ITL p50 ${itl(f.itlP50)}, ${rate(f.tokensPerS)} tok/s, ${live.errors} errors${slots}`
  );
}

export function summaryLine(summary: RunSummary): string {
  const loads = summary.lora.adapterLoads !== null ? `, ${summary.lora.adapterLoads} adapter loads` : '';
  return (
    `[${summary.run}] ${summary.completed}/${summary.requests} ok: TTFT p50 ${ms(summary.ttft.p50)} p99 ${ms(summary.ttft.p99)}, ` +
    `ITL p50 ${itl(summary.itl.p50)}` +
    `${summary.itlSameReadShare ? ` (${(summary.itlSameReadShare * 100).toFixed(0)}% in one read)` : ''}, E2E p50 ${ms(summary.e2e.p50)} p99 ${ms(summary.e2e.p99)}, ` +
    `${rate(summary.outputTokPerS)} tok/s, ${rate(summary.reqPerS)} req/s, ${summary.errors} errors${loads}`
  );
}
