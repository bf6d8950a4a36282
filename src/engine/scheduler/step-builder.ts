/** Turns a planned chunk of one sequence into the runner's StepSequence (spec e.3 inputs per sequence). */
import type { StepSampling, StepSequence } from '../model/runner-types.js';
import type { Sequence } from './sequence.js';

export interface PlannedChunk {
  seq: Sequence;
  /** First position computed this step. */
  start: number;
  length: number;
  promptLogprobs: boolean;
}

/**
 * Overlap scheduling: the sequence's newest token was sampled by the step still in flight, at sequence index
 * `pendingIndex` of that step (-1: every token is known), and `generated` counts it.
 */
export interface LagState {
  generated: number;
  pendingIndex: number;
}

export function buildStepSequence(
  chunk: PlannedChunk,
  slot: number,
  blockSize: number,
  eosTokenIds: readonly number[] = [],
  lag: LagState = { generated: chunk.seq.outputIds.length, pendingIndex: -1 },
): StepSequence {
  const { seq, start, length } = chunk;
  const tokenIds = new Array<number>(length);
  let tokenFromPrevious: number | undefined;
  for (let i = 0; i < length; i++) {
    const known = start + i < seq.promptLen + seq.outputIds.length;
    if (!known && (lag.pendingIndex < 0 || length !== 1)) throw new Error(`internal: position ${start + i} of ${seq.req.rid} has no token yet`);
    tokenIds[i] = known ? seq.tokenAt(start + i) : 0;
    if (!known) tokenFromPrevious = lag.pendingIndex;
  }
  const end = start + length;
  const blocks = Math.ceil(end / blockSize);
  const samples = end >= seq.promptLen; // a final prompt chunk or a decode step
  const out: StepSequence = {
    tokenIds,
    startPosition: start,
    blockTable: seq.alloc!.blockTable.slice(0, blocks),
    slot,
    sampling: samples ? samplingFor(seq, eosTokenIds, lag.generated) : null,
  };
  if (tokenFromPrevious !== undefined) out.tokenFromPrevious = tokenFromPrevious;
  if (chunk.promptLogprobs && start < seq.promptLen) {
    out.promptLogprobs = true;
    if (seq.promptTopLogprobs) out.promptTopLogprobsNum = seq.req.sampling.topLogprobsNum;
    if (end < seq.promptLen) out.nextPromptTokenId = seq.req.promptTokenIds[end];
  }
  return out;
}

function samplingFor(seq: Sequence, eosTokenIds: readonly number[], generated: number): StepSampling {
  const s = seq.req.sampling;
  const sampling: StepSampling = {
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    minP: s.minP,
    seed: s.seed,
    generatedCount: generated,
    repetitionPenalty: s.repetitionPenalty,
    frequencyPenalty: s.frequencyPenalty,
    presencePenalty: s.presencePenalty,
    promptTokenIds: seq.req.promptTokenIds,
    outputTokenIds: seq.outputIds,
    topLogprobsNum: s.topLogprobsNum,
    wantLogprob: s.returnLogprob,
  };
  const suppressed = seq.suppressedTokenIds(eosTokenIds, generated);
  if (suppressed) sampling.suppressTokenIds = suppressed;
  if (s.logitBias && s.logitBias.length > 0) sampling.logitBias = s.logitBias;
  return sampling;
}

/**
 * Decode tokens for every decoding sequence, then prompt chunks within the prefill budget (age order). `computedOf`:
 * KV positions a sequence will have once the step in flight ran (overlap scheduling); default what it has now.
 */
export function planStep(running: readonly Sequence[], chunkedPrefillSize: number, computedOf: (seq: Sequence) => number = (s) => s.computed): PlannedChunk[] {
  const plan: PlannedChunk[] = [];
  let prefillBudget = chunkedPrefillSize > 0 ? chunkedPrefillSize : Number.POSITIVE_INFINITY;
  for (const seq of running) {
    const computed = computedOf(seq);
    if (computed >= seq.promptLen) plan.push({ seq, start: computed, length: 1, promptLogprobs: false });
  }
  for (const seq of running) {
    const computed = computedOf(seq);
    if (computed >= seq.promptLen || prefillBudget <= 0) continue;
    const length = Math.min(seq.promptLen - computed, prefillBudget);
    prefillBudget -= length;
    plan.push({ seq, start: computed, length, promptLogprobs: seq.promptLogprobs !== null });
  }
  return plan;
}

/**
 * Stores the prompt logprobs of one chunk: values[i] = logprob of the token at position start + i + 1, tops[i] =
 * the top alternatives at that position.
 */
export function collectPromptLogprobs(
  seq: Sequence,
  start: number,
  length: number,
  values: number[] | undefined,
  tops?: Array<Array<[number, number]>>,
): void {
  if (!seq.promptLogprobs || !values) return;
  for (let i = 0; i < values.length; i++) {
    const position = start + i + 1;
    if (position < seq.promptLen && position < start + length + 1) {
      seq.promptLogprobs[position] = values[i];
      if (seq.promptTopLogprobs && tops?.[i]) seq.promptTopLogprobs[position] = tops[i];
    }
  }
}
