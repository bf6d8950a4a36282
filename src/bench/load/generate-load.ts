/**
 * Drives one level's requests against a target: open loop (each request sent at its planned time, whatever is
 * in flight) or closed loop (a fixed number in flight). Returns one timing per request, in plan order.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Arrival } from '../config/schema.js';
import type { PlannedRequest } from '../workload/plan.js';
import { ITL_WINDOW, TTFT_WINDOW, pushWindow, type LiveRunState } from '../runner/live-state.js';
import { sendStreaming, type StreamTiming, type Target } from './stream-request.js';

export interface LoadOptions {
  target: Target;
  requests: PlannedRequest[];
  arrival: Arrival;
  /** stop sending new requests after this many ms (already-sent ones finish) */
  durationLimitMs?: number;
  live?: LiveRunState;
}

export interface LoadResult {
  /** performance.now() of the level start */
  startedAt: number;
  /** timings of the requests that were sent (a duration limit may leave the tail unsent) */
  timings: { planned: PlannedRequest; timing: StreamTiming }[];
}

export async function generateLoad({ target, requests, arrival, durationLimitMs, live }: LoadOptions): Promise<LoadResult> {
  const startedAt = performance.now();
  const timings: LoadResult['timings'] = [];
  const expired = () => target.signal?.aborted === true || (durationLimitMs !== undefined && performance.now() - startedAt > durationLimitMs);

  const runOne = async (planned: PlannedRequest) => {
    if (live) {
      live.sent++;
      live.inFlight++;
    }
    const timing = await sendStreaming(target, planned, {
      onTokens: (n) => {
        if (live) live.outputTokens += n;
      },
      onFirstToken: (ttftMs) => {
        if (live) pushWindow(live.recentTtftMs, ttftMs, TTFT_WINDOW);
      },
    });
    timings.push({ planned, timing });
    if (live) {
      live.inFlight--;
      live.done++;
      if (timing.error) {
        live.errors++;
        live.message = timing.error;
      }
      for (const gap of timing.itlMs) pushWindow(live.recentItlMs, gap, ITL_WINDOW);
    }
  };

  if (arrival.type === 'closed') {
    let next = 0;
    const worker = async () => {
      while (next < requests.length && !expired()) await runOne(requests[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(arrival.concurrency, requests.length) }, worker));
  } else {
    const pending: Promise<void>[] = [];
    for (const planned of requests) {
      const waitMs = (planned.sendAtMs ?? 0) - (performance.now() - startedAt);
      if (waitMs > 1) await sleep(waitMs, undefined, { signal: target.signal }).catch(() => undefined);
      if (expired()) break;
      pending.push(runOne(planned));
    }
    await Promise.all(pending);
  }
  timings.sort((a, b) => a.planned.index - b.planned.index);
  return { startedAt, timings };
}
