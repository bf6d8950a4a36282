/**
 * What bench/cuda/decode.ts and side-expand-ab.ts set up alike: the synthetic adapters (`tslora synth adapters
 * --count 8`) read and written into slots 0..7, greedy sampling, and one decode scenario's sequences (base: no
 * adapter, shared: every row slot 0, distinct: row b slot b % 8), each row with its own prompt and block range.
 */
import { join } from 'node:path';

import { readAdapter } from '../../src/engine/model/adapter.js';
import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, ModelSpec } from '../../src/engine/model/types.js';

export type DecodeScenario = 'base' | 'shared' | 'distinct';
export const BENCH_ADAPTER_COUNT = 8;

export const greedySampling: StepSampling = {
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: false,
};

/** dir/lora-0 … lora-7, read for the model's spec (rank ≤ 64, every module). */
export async function readBenchAdapters(dir: string, spec: ModelSpec): Promise<AdapterSpec[]> {
  const adapters: AdapterSpec[] = [];
  for (let i = 0; i < BENCH_ADAPTER_COUNT; i++)
    adapters.push((await readAdapter(join(dir, `lora-${i}`), spec, { maxRank: 64, targetModules: null, strict: false })).adapter);
  return adapters;
}

/** Adapter i into slot i, through the host tier as the server does. */
export async function fillAdapterSlots(runner: ModelRunner, adapters: AdapterSpec[]): Promise<void> {
  for (let s = 0; s < adapters.length; s++) {
    const host = await runner.loadHostAdapter(adapters[s]);
    runner.copyAdapterToSlot(s, host);
    runner.freeHostAdapter(host);
  }
}

/** The prefill sequences of one scenario: row b has a prompt of promptTokens ids and blocks [b·blocksPerSeq, …). */
export function scenarioSequences(opts: { batch: number; scenario: DecodeScenario; promptTokens: number; blocksPerSeq: number; vocabSize: number }): StepSequence[] {
  const { batch, scenario, promptTokens, blocksPerSeq, vocabSize } = opts;
  const slotOf = (b: number) => (scenario === 'base' ? -1 : scenario === 'shared' ? 0 : b % BENCH_ADAPTER_COUNT);
  return Array.from({ length: batch }, (_, b) => ({
    tokenIds: Array.from({ length: promptTokens }, (_, i) => (b * 131 + i * 7 + 3) % vocabSize),
    startPosition: 0,
    blockTable: Array.from({ length: blocksPerSeq }, (_, i) => b * blocksPerSeq + i),
    slot: slotOf(b),
    sampling: greedySampling,
  }));
}

/** "NxT" (e.g. "8x512": 8 prompts of 512 tokens); undefined when not given. Throws on anything else. */
export function parsePrefill(text: string | undefined): { prompts: number; tokens: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`--prefill: expected NxT (e.g. 8x512), got ${JSON.stringify(text)}`);
  return { prompts: Number(m[1]), tokens: Number(m[2]) };
}

/** One prefill step of `prompts` prompts of `tokens` ids (prompt b: blocks [b·⌈tokens/blockSize⌉, …), adapter slot
 * b % 8 with adapters, else none), as bench/cuda/decode.ts's prefill row. */
export function prefillSequences(opts: { prompts: number; tokens: number; blockSize: number; withAdapters: boolean; vocabSize: number }): StepSequence[] {
  const { prompts, tokens, blockSize, withAdapters, vocabSize } = opts;
  const blocksPerSeq = Math.ceil(tokens / blockSize);
  return Array.from({ length: prompts }, (_, b) => ({
    tokenIds: Array.from({ length: tokens }, (_, i) => (b * 17 + i * 13) % vocabSize),
    startPosition: 0,
    blockTable: Array.from({ length: blocksPerSeq }, (_, i) => b * blocksPerSeq + i),
    slot: withAdapters ? b % BENCH_ADAPTER_COUNT : -1,
    sampling: greedySampling,
  }));
}
