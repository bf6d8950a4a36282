/**
 * One level against a ready server: optional warm-up (excluded from every figure), the measured workload with
 * /metrics scraped before and after (LoRA counter deltas, the server's decode-step histogram) and polled meanwhile
 * (slot occupancy for the dashboard).
 */
import { performance } from 'node:perf_hooks';
import { TsloraError } from '../../errors.js';
import type { Workload } from '../config/schema.js';
import { generateLoad, type LoadResult } from '../load/generate-load.js';
import type { Target } from '../load/stream-request.js';
import type { LoraCounters } from '../metrics/records.js';
import { NO_LORA_COUNTERS } from '../metrics/summarize.js';
import { scrapeMetrics } from '../server/admin.js';
import { readStepHistogram, stepHistogramDelta, type StepHistogram } from '../server/engine-step.js';
import { loraCounters, slotGauges } from '../server/prometheus.js';
import { planRequests } from '../workload/plan.js';
import type { LiveRunState } from './live-state.js';

export interface LevelInput {
  target: Target;
  workload: Workload;
  /** adapter names this level draws from */
  adapters: string[];
  vocabSize: number;
  warmUp: boolean;
  live: LiveRunState;
}

export async function measureLevel({ target, workload, adapters, vocabSize, warmUp, live }: LevelInput): Promise<{ result: LoadResult; counters: LoraCounters; engineStep: StepHistogram | null }> {
  if (warmUp && workload.warmupRequests > 0) {
    const warmup = planRequests({ workload, adapters, vocabSize, warmup: true });
    const warm = await generateLoad({ target, requests: warmup, arrival: { type: 'closed', concurrency: Math.min(4, warmup.length) } });
    const failed = warm.timings.filter((t) => t.timing.error);
    if (failed.length === warm.timings.length) {
      throw new TsloraError('server_error', `every warm-up request failed; first error: ${failed[0].timing.error}`);
    }
  }
  const planned = planRequests({ workload, adapters, vocabSize, warmup: false });
  const before = await scrapeMetrics(target.baseUrl, target.apiKey);
  live.phase = 'running';
  live.startedAt = performance.now();
  const poll = setInterval(() => {
    void scrapeMetrics(target.baseUrl, target.apiKey).then((samples) => {
      if (samples.size === 0) return; // a busy server may miss a scrape: keep the last figures
      const slots = slotGauges(samples);
      live.slotsUsed = slots.used;
      live.slotsTotal = slots.total;
    });
  }, 1000);
  let result: LoadResult;
  try {
    const durationLimitMs = workload.durationS ? workload.durationS * 1000 : undefined;
    result = await generateLoad({ target, requests: planned, arrival: workload.arrival, durationLimitMs, live });
  } finally {
    clearInterval(poll);
  }
  const after = await scrapeMetrics(target.baseUrl, target.apiKey);
  const scraped = before.size > 0 && after.size > 0;
  return {
    result,
    counters: after.size > 0 ? loraCounters(before, after) : NO_LORA_COUNTERS,
    engineStep: scraped ? stepHistogramDelta(readStepHistogram(before), readStepHistogram(after)) : null,
  };
}
