// Shared by the PEFT parity tests (parity.test.ts, tensor-parallel.test.ts): the reference JSON format of
// test/fixtures/reference/<model>.json, the committed fixtures' adapters read once, and greedy batch decoding
// through a ModelRunner.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readAdapter } from '../../src/engine/model/adapter.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, LoraTargetModule } from '../../src/engine/model/types.js';
import { relativeL2 } from './forward-reference.js';
import { greedy } from './forward-random-model.js';

export const FIXTURES = 'test/fixtures';
export const PARITY_MODELS = ['tiny-llama', 'tiny-qwen2', 'tiny-qwen3'] as const;

export interface PromptReference {
  lastLogits: number[];
  greedy: number[];
}
export interface Reference {
  modelPath: string;
  greedyTokens: number;
  prompts: number[][];
  base: PromptReference[];
  adapters: Array<{ name: string; path: string; prompts: PromptReference[] }>;
  mixedBatches: Array<{ adapters: string[]; prompts: number[][]; lastLogits: number[][]; greedy: number[][] }>;
}

export { greedy };
export const BLOCK = 4;
export const BLOCKS_PER_SEQ = 16;

/** Greedy decoding of several sequences in one batch: prefill (optionally in chunks), then one token per step. */
export function generate(runner: ModelRunner, prompts: number[][], slots: number[], numTokens: number, chunk = 0): { lastLogits: Float32Array[]; tokens: number[][] } {
  const tables = prompts.map((_, b) => Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => b * BLOCKS_PER_SEQ + i));
  const maxLen = Math.max(...prompts.map((p) => p.length));
  const step = chunk > 0 ? chunk : maxLen;
  let first: ReturnType<ModelRunner['step']> = [];
  // Prefill in chunks of `step` tokens per sequence (sequences that finished their prompt wait).
  const results = new Array(prompts.length);
  for (let start = 0; start < maxLen; start += step) {
    const seqs: StepSequence[] = [];
    const index: number[] = [];
    prompts.forEach((p, b) => {
      if (start >= p.length) return;
      const end = Math.min(p.length, start + step);
      seqs.push({ tokenIds: p.slice(start, end), startPosition: start, blockTable: tables[b], slot: slots[b], sampling: end === p.length ? greedy : null, returnLogits: true });
      index.push(b);
    });
    first = runner.step(seqs);
    first.forEach((r, i) => {
      if (r.tokenId >= 0) results[index[i]] = r;
    });
  }
  const tokens = results.map((r) => [r.tokenId]);
  const lastLogits = results.map((r) => r.logits as Float32Array);
  for (let t = 1; t < numTokens; t++) {
    const out = runner.step(
      prompts.map((p, b) => ({ tokenIds: [tokens[b][t - 1]], startPosition: p.length + t - 1, blockTable: tables[b], slot: slots[b], sampling: greedy })),
    );
    out.forEach((r, b) => tokens[b].push(r.tokenId));
  }
  return { lastLogits, tokens };
}

export function readReference(model: string): Reference {
  return JSON.parse(readFileSync(join(FIXTURES, 'reference', `${model}.json`), 'utf8')) as Reference;
}

/** The model and every reference adapter of a fixture, with the pool shape that holds them all. */
export async function loadParityFixture(ref: Reference) {
  const modelDir = join(FIXTURES, ref.modelPath);
  const loaded = await loadModel(modelDir);
  const adapters: AdapterSpec[] = [];
  for (const a of ref.adapters) {
    const { adapter } = await readAdapter(join(modelDir, a.path), loaded.spec, { maxRank: 64, targetModules: null, strict: false });
    adapters.push(adapter);
  }
  const targets = [...new Set(adapters.flatMap((a) => a.targetModules))] as LoraTargetModule[];
  return { loaded, adapters, targets, maxRank: Math.max(...adapters.map((a) => a.rank)) };
}

/** Loads every adapter into slot i (the reference's order); returns slot by adapter name. */
export async function fillSlots(runner: ModelRunner, ref: Reference, adapters: AdapterSpec[]): Promise<Map<string, number>> {
  const slotOf = new Map<string, number>();
  for (let s = 0; s < adapters.length; s++) {
    const host = await runner.loadHostAdapter(adapters[s]);
    runner.copyAdapterToSlot(s, host);
    runner.freeHostAdapter(host);
    slotOf.set(ref.adapters[s].name, s);
  }
  return slotOf;
}

/**
 * Prompts (alternately base and adapters) prefilled in chunks of 1 and 3 tokens decode as the whole prefill does.
 * Logits agree to fp32 rounding, not bit for bit: a chunk of few rows takes the LoRA kernels' streaming expand
 * (fewer than 8 rows) and attention reads the keys from the cache in other blocks (tiny-qwen3 measured 1.05e-6).
 */
export function assertChunkedPrefillMatches(runner: ModelRunner, ref: Reference): void {
  const slots = ref.prompts.map((_, i) => (i % 2 === 0 ? -1 : ref.adapters.length - 1 - i));
  const whole = generate(runner, ref.prompts, slots, 4);
  for (const chunk of [1, 3]) {
    const chunked = generate(runner, ref.prompts, slots, 4, chunk);
    ref.prompts.forEach((_, p) => {
      const err = relativeL2(chunked.lastLogits[p], whole.lastLogits[p]);
      assert.ok(err < 1e-5, `chunk ${chunk} prompt ${p}: relative L2 ${err}`);
      assert.deepEqual(chunked.tokens[p], whole.tokens[p]);
    });
  }
}
