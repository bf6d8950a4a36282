/**
 * Turns a workload into a deterministic list of requests: the same seed gives every variant the same prompts,
 * lengths, adapters and arrival times, so A/B comparisons see identical traffic.
 */
import type { Workload } from '../config/schema.js';
import { AdapterPicker, drawLength, nextArrivalGapMs } from './distributions.js';
import { SeededRandom } from './random.js';

export interface PlannedRequest {
  index: number;
  /** send time relative to the start of the level, ms; null in closed loop (sent when a slot frees up) */
  sendAtMs: number | null;
  inputTokens: number;
  outputTokens: number;
  /** adapter name, or null for the base model */
  adapter: string | null;
  /** the prompt as token ids: exact input lengths without depending on the tokenizer */
  inputIds: number[];
}

export interface PlanOptions {
  workload: Workload;
  /** adapter names available to this run (already cut to workload.adapterCount) */
  adapters: string[];
  /** vocabulary size of the model; prompt ids are drawn below min(vocab, 32000) and above the special ids */
  vocabSize: number;
  warmup: boolean;
}

const FIRST_PROMPT_ID = 4;

export function planRequests({ workload, adapters, vocabSize, warmup }: PlanOptions): PlannedRequest[] {
  // separate streams so warm-up never shifts the measured requests
  const random = new SeededRandom(warmup ? workload.seed + 7_919 : workload.seed);
  const count = warmup ? workload.warmupRequests : workload.requests;
  const picker = new AdapterPicker(workload.popularity, adapters.length);
  const maxId = Math.max(FIRST_PROMPT_ID + 1, Math.min(vocabSize, 32_000) - 1);
  const requests: PlannedRequest[] = [];
  let clockMs = 0;
  for (let index = 0; index < count; index++) {
    const gap = warmup ? null : nextArrivalGapMs(workload.arrival, random);
    if (gap !== null && index > 0) clockMs += gap;
    const inputTokens = drawLength(workload.inputTokens, random);
    const outputTokens = drawLength(workload.outputTokens, random);
    const isBase = workload.baseFraction > 0 && random.next() < workload.baseFraction;
    const adapterIndex = isBase ? null : picker.pick(index, random);
    const inputIds = new Array<number>(inputTokens);
    for (let t = 0; t < inputTokens; t++) inputIds[t] = random.int(FIRST_PROMPT_ID, maxId);
    requests.push({
      index,
      sendAtMs: gap === null ? null : clockMs,
      inputTokens,
      outputTokens,
      adapter: adapterIndex === null ? null : adapters[adapterIndex],
      inputIds,
    });
  }
  return requests;
}

/** Adapters a level may use: the first `adapterCount` of the list (adapter-count sweeps), else all. */
export function adaptersForWorkload(all: string[], workload: Workload): string[] {
  return workload.adapterCount === undefined ? all : all.slice(0, workload.adapterCount);
}
