/**
 * The synthetic model and adapters of the native CPU benchmarks (decode.ts), cached on disk, and a timed decoder
 * over a ModelRunner. Not a test.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel, type RandomModel } from '../../test/native/forward-random-model.js';

export interface BenchShape {
  hidden: number;
  intermediate: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  dtype: 'bf16' | 'f16' | 'f32';
  vocab: number;
}

export const greedySampling: StepSampling = {
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: false,
};

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The random model of `shape` under dir/model (written once; reused while the shape is the same). */
export function benchModel(dir: string, shape: BenchShape): RandomModel {
  const stamp = join(dir, 'model.json');
  const key = JSON.stringify(shape);
  if (existsSync(stamp)) {
    const saved = JSON.parse(readFileSync(stamp, 'utf8'));
    if (saved.key === key) return { ...saved.model, values: new Map() };
  }
  const t0 = performance.now();
  const model = writeRandomModel({ dir: join(dir, 'model'), ...shape, seed: 7, weightScale: 1 });
  writeFileSync(stamp, JSON.stringify({ key, model: { spec: model.spec, weights: model.weights, sizeBytes: model.sizeBytes } }));
  console.error(`generated the model in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return model;
}

/** `count` random adapters of `rank` on all seven projections, under dir/rank-R (written once). */
export function benchAdapters(dir: string, model: RandomModel, shape: BenchShape, rank: number, count: number): AdapterSpec[] {
  const stamp = join(dir, `adapters-r${rank}.json`);
  const key = JSON.stringify({ shape, rank, count });
  if (existsSync(stamp)) {
    const saved = JSON.parse(readFileSync(stamp, 'utf8'));
    if (saved.key === key) return saved.adapters;
  }
  const modules: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const adapters = Array.from({ length: count }, (_, i) => writeRandomAdapter(join(dir, `rank-${rank}`, `adapter-${i}`), model.spec, rank, modules, 100 + i).adapter);
  writeFileSync(stamp, JSON.stringify({ key, adapters }));
  return adapters;
}

/** A batch of sequences (16-token prefill each) that `next()` advances by one decode step, timed (seconds). */
export function decoder(runner: ModelRunner, vocab: number, slots: number[], firstBlock: number): { next: () => number } {
  const seqs: StepSequence[] = slots.map((slot, b) => ({
    tokenIds: Array.from({ length: 16 }, (_, i) => (b * 131 + i * 7) % vocab),
    startPosition: 0,
    blockTable: Array.from({ length: 8 }, (_, i) => firstBlock + b * 8 + i),
    slot,
    sampling: greedySampling,
  }));
  let tokens = runner.step(seqs).map((r) => r.tokenId);
  let position = 16;
  return {
    next: () => {
      const t0 = performance.now();
      const out = runner.step(seqs.map((q, b) => ({ ...q, tokenIds: [tokens[b]], startPosition: position })));
      const seconds = (performance.now() - t0) / 1000;
      tokens = out.map((r) => r.tokenId);
      position = position + 1 < 100 ? position + 1 : 16; // stay inside the 8 blocks of 16 positions
      return seconds;
    },
  };
}

/** One prefill of `tokens` prompt tokens in blocks [firstBlock, ...), timed (seconds). */
export function timePrefill(runner: ModelRunner, vocab: number, tokens: number, firstBlock: number, salt: number): number {
  const t0 = performance.now();
  runner.step([{
    tokenIds: Array.from({ length: tokens }, (_, i) => (i * 37 + salt) % vocab), startPosition: 0,
    blockTable: Array.from({ length: Math.ceil(tokens / 16) }, (_, i) => firstBlock + i), slot: -1, sampling: greedySampling,
  }]);
  return (performance.now() - t0) / 1000;
}
