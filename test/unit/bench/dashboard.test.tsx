/** @jsxRuntime automatic */
/** @jsxImportSource react */
// (tsx compiles test files outside tsconfig.json's include with the classic JSX runtime unless told)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { render } from 'ink-testing-library';
import { Dashboard, progressBar, slotBar, type DashboardSnapshot } from '../../../src/bench/reporters/ink/dashboard.js';
import { newLiveState } from '../../../src/bench/runner/live-state.js';
import { summarizeRun } from '../../../src/bench/metrics/summarize.js';
import type { RequestRecord } from '../../../src/bench/metrics/records.js';

function finishedRun(run: string, ttftMs: number, errors = 0) {
  const records: RequestRecord[] = Array.from({ length: 10 }, (_v, i) => ({
    run, variant: run, level: null, round: 0, index: i, adapter: 'a', inputTokens: 8, requestedOutputTokens: 4, outputTokens: 4,
    sentAtMs: i * 100, ttftMs, e2eMs: ttftMs + 30, itlMs: [10, 10, 10], error: i < errors ? 'HTTP 400: bad' : null,
  }));
  return summarizeRun({ run, variant: run, level: null }, records, 1000);
}

function snapshot(partial: Partial<DashboardSnapshot>): DashboardSnapshot {
  return { title: 'triton-vs-csgmv', outDir: 'bench-out/x', finished: [], live: null, pending: [], lastLog: '', now: 10_000, tick: 0, ...partial };
}

test('the live panel shows progress, in-flight requests, rolling percentiles, tokens/s and slot occupancy', () => {
  const live = newLiveState('csgmv@c4', 'csgmv', 'c4', 40);
  Object.assign(live, {
    phase: 'running', done: 10, sent: 14, inFlight: 4, errors: 1, startedAt: 8000, outputTokens: 300,
    recentTtftMs: [10, 20, 30, 40, 1000], recentItlMs: [5, 5, 5, 6, 50], slotsUsed: 3, slotsTotal: 8,
  });
  const { lastFrame, unmount } = render(<Dashboard snapshot={snapshot({ live, pending: ['csgmv@c16'], lastLog: 'csgmv: loaded adapter lora-3 in 12 ms' })} />);
  const frame = lastFrame() ?? '';
  unmount();
  assert.match(frame, /tslora bench triton-vs-csgmv/);
  assert.match(frame, /csgmv@c4/);
  assert.match(frame, /10\/40 done · 4 in flight · 1 errors/);
  assert.match(frame, /███████░/); // 25 % of the bar
  assert.match(frame, /TTFT \(rolling\)\s+p50 30\.0 ms · p90 1000 ms · p99 1000 ms/);
  assert.match(frame, /ITL \(rolling\)\s+p50 5\.0 ms · p99 50\.0 ms/);
  assert.match(frame, /150 tok\/s/); // 300 tokens in 2 s
  assert.match(frame, /▰▰▰▱▱▱▱▱ 3\/8/);
  assert.match(frame, /next: csgmv@c16/);
  assert.match(frame, /loaded adapter lora-3/);
});

test('finished runs stay listed above the live panel, with their summary figures', () => {
  const live = newLiveState('csgmv', 'csgmv', null, 10);
  live.phase = 'warmup';
  const { lastFrame, rerender, unmount } = render(<Dashboard snapshot={snapshot({ finished: [finishedRun('triton', 42.5)], live })} />);
  rerender(<Dashboard snapshot={snapshot({ finished: [finishedRun('triton', 42.5), finishedRun('csgmv', 21, 2)], live: null })} />);
  const frame = lastFrame() ?? '';
  unmount();
  assert.match(frame, /✔ triton\s+10\/10 · TTFT p50\/p99 42\.5 ms\/42\.5 ms · ITL 10\.0 ms/);
  assert.match(frame, /! csgmv\s+8\/10 .*2 errors/);
  assert.doesNotMatch(frame, /in flight/); // no live panel once everything finished
});

test('bars clamp and show n/a when the server exports no slot gauges', () => {
  assert.equal(progressBar(5, 10, 10), '█████░░░░░');
  assert.equal(progressBar(50, 10, 4), '████');
  assert.equal(progressBar(0, 0, 4), '░░░░');
  assert.equal(slotBar(null, null), 'n/a');
  assert.equal(slotBar(2, 4), '▰▰▱▱ 2/4');
});

test('with several rounds the live panel names the round', () => {
  const live = newLiveState('csgmv@c4', 'csgmv', 'c4', 8);
  Object.assign(live, { phase: 'running', round: 1, rounds: 3 });
  const { lastFrame, unmount } = render(<Dashboard snapshot={snapshot({ live })} />);
  const frame = lastFrame() ?? '';
  unmount();
  assert.match(frame, /csgmv@c4 · round 2\/3\s+running/);
});
