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

export function buildStepSequence(chunk: PlannedChunk, slot: number, blockSize: number, eosTokenIds: readonly number[] = []): StepSequence {
  const { seq, start, length } = chunk;
  const tokenIds = new Array<number>(length);
  for (let i = 0; i < length; i++) tokenIds[i] = seq.tokenAt(start + i);
  const end = start + length;
  const blocks = Math.ceil(end / blockSize);
  const samples = end >= seq.promptLen; // a final prompt chunk or a decode step
  const out: StepSequence = {
    tokenIds,
    startPosition: start,
    blockTable: seq.alloc!.blockTable.slice(0, blocks),
    slot,
    sampling: samples ? samplingFor(seq, eosTokenIds) : null,
  };
  if (chunk.promptLogprobs && start < seq.promptLen) {
    out.promptLogprobs = true;
    if (seq.promptTopLogprobs) out.promptTopLogprobsNum = seq.req.sampling.topLogprobsNum;
    if (end < seq.promptLen) out.nextPromptTokenId = seq.req.promptTokenIds[end];
  }
  return out;
}

function samplingFor(seq: Sequence, eosTokenIds: readonly number[]): StepSampling {
  const s = seq.req.sampling;
  const sampling: StepSampling = {
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    minP: s.minP,
    seed: s.seed,
    generatedCount: seq.outputIds.length,
    repetitionPenalty: s.repetitionPenalty,
    frequencyPenalty: s.frequencyPenalty,
    presencePenalty: s.presencePenalty,
    promptTokenIds: seq.req.promptTokenIds,
    outputTokenIds: seq.outputIds,
    topLogprobsNum: s.topLogprobsNum,
    wantLogprob: s.returnLogprob,
  };
  const suppressed = seq.suppressedTokenIds(eosTokenIds);
  if (suppressed) sampling.suppressTokenIds = suppressed;
  if (s.logitBias && s.logitBias.length > 0) sampling.logitBias = s.logitBias;
  return sampling;
}

/** Decode tokens for every decoding sequence, then prompt chunks within the prefill budget (age order). */
export function planStep(running: readonly Sequence[], chunkedPrefillSize: number): PlannedChunk[] {
  const plan: PlannedChunk[] = [];
  let prefillBudget = chunkedPrefillSize > 0 ? chunkedPrefillSize : Number.POSITIVE_INFINITY;
  for (const seq of running) {
    if (!seq.inPrefill) plan.push({ seq, start: seq.computed, length: 1, promptLogprobs: false });
  }
  for (const seq of running) {
    if (!seq.inPrefill || prefillBudget <= 0) continue;
    const length = Math.min(seq.promptLen - seq.computed, prefillBudget);
    prefillBudget -= length;
    plan.push({ seq, start: seq.computed, length, promptLogprobs: seq.promptLogprobs !== null });
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
