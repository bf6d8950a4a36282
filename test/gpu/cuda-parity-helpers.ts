/**
 * Shared pieces of the CUDA GPU tests: whether the CUDA addon and a GPU are there (the skip reason otherwise), the
 * committed fixtures and their PyTorch + PEFT references, and a teacher-forced generation that returns the logits of
 * every step (prefill, then one decode step per reference token).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadNativeBackend, type NativeBackend } from '../../src/binding/index.js';
import { readAdapter } from '../../src/engine/model/adapter.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, LoraTargetModule } from '../../src/engine/model/types.js';

export const FIXTURES = 'test/fixtures';
export const MODELS = ['tiny-llama', 'tiny-qwen2', 'tiny-qwen3'];

/** The CUDA backend, or the reason the GPU tests are skipped. */
export function cudaBackendOrSkip(): { backend: NativeBackend | null; skip: string | false } {
  try {
    const backend = loadNativeBackend('cuda');
    const info = backend.deviceInfo() as ReturnType<NativeBackend['deviceInfo']> & { reason?: string };
    if (info.gpuCount === 0) return { backend: null, skip: `the CUDA addon reports no GPU (${info.reason ?? 'no reason given'})` };
    return { backend, skip: false };
  } catch (error) {
    return { backend: null, skip: `the CUDA addon is not available: ${(error as Error).message}` };
  }
}

export interface PromptReference {
  lastLogits: number[];
  greedy: number[];
}
export interface Reference {
  modelPath: string;
  vocabSize: number;
  greedyTokens: number;
  prompts: number[][];
  base: PromptReference[];
  adapters: Array<{ name: string; path: string; prompts: PromptReference[] }>;
  mixedBatches: Array<{ adapters: string[]; prompts: number[][]; lastLogits: number[][]; greedy: number[][] }>;
}

export function readReference(model: string): Reference {
  return JSON.parse(readFileSync(join(FIXTURES, 'reference', `${model}.json`), 'utf8')) as Reference;
}

export const greedy: StepSampling = {
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: false,
};
export const BLOCK = 4;
export const BLOCKS_PER_SEQ = 16;

/** Every LoRA target the CUDA engine supports (all of them since embed_tokens got its gather kernel); an adapter
 * with any other module would be left out of the GPU tests and reported as skipped. */
export const CUDA_LORA_MODULES: LoraTargetModule[] = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'embed_tokens', 'lm_head'];

export interface LoadedFixture {
  modelDir: string;
  loaded: Awaited<ReturnType<typeof loadModel>>;
  adapters: Array<{ name: string; spec: AdapterSpec }>;
  skippedAdapters: string[];
}

export async function loadFixture(model: string, ref: Reference): Promise<LoadedFixture> {
  const modelDir = join(FIXTURES, ref.modelPath);
  const loaded = await loadModel(modelDir);
  const adapters: LoadedFixture['adapters'] = [];
  const skippedAdapters: string[] = [];
  for (const a of ref.adapters) {
    const { adapter } = await readAdapter(join(modelDir, a.path), loaded.spec, { maxRank: 64, targetModules: null, strict: false });
    if (adapter.targetModules.every((m) => CUDA_LORA_MODULES.includes(m))) adapters.push({ name: a.name, spec: adapter });
    else skippedAdapters.push(a.name);
  }
  return { modelDir, loaded, adapters, skippedAdapters };
}

/** A runner with every usable adapter in slots 0..n-1 (the same slots on every backend). */
export async function makeRunner(fx: LoadedFixture, backend: NativeBackend, loraBackend: 'triton' | 'csgmv', computeDtype?: 'bf16' | 'f16', kvNumBlocks = 8 * BLOCKS_PER_SEQ, cudaGraphMaxBatchSize?: number): Promise<ModelRunner> {
  const targets = [...new Set(fx.adapters.flatMap((a) => a.spec.targetModules))] as LoraTargetModule[];
  const runner = new ModelRunner(fx.loaded, {
    backend, kvNumBlocks, kvBlockSize: BLOCK, loraSlots: Math.max(1, fx.adapters.length),
    loraMaxRank: Math.max(1, ...fx.adapters.map((a) => a.spec.rank)), loraTargetModules: targets.length > 0 ? targets : ['qkv_proj'],
    loraBackend, maxLoraChunkSize: 16, numThreads: 2, computeDtype, cudaGraphMaxBatchSize,
  });
  for (let s = 0; s < fx.adapters.length; s++) {
    const host = await runner.loadHostAdapter(fx.adapters[s].spec);
    runner.copyAdapterToSlot(s, host);
    runner.freeHostAdapter(host);
  }
  return runner;
}

/**
 * Teacher-forced decoding of several sequences in one batch: prefill every prompt, then feed forced[b][t] as the
 * input of step t+1. Returns the logits of every step per sequence ([numSteps] × V) and the tokens the runner chose.
 */
export function teacherForced(runner: ModelRunner, prompts: number[][], slots: number[], forced: number[][], numSteps: number): { logits: Float32Array[][]; tokens: number[][] } {
  const tables = prompts.map((_, b) => Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => b * BLOCKS_PER_SEQ + i));
  const logits: Float32Array[][] = prompts.map(() => []);
  const tokens: number[][] = prompts.map(() => []);
  const first = runner.step(prompts.map((p, b) => ({ tokenIds: p, startPosition: 0, blockTable: tables[b], slot: slots[b], sampling: greedy, returnLogits: true })));
  first.forEach((r, b) => {
    logits[b].push(r.logits as Float32Array);
    tokens[b].push(r.tokenId);
  });
  for (let t = 1; t < numSteps; t++) {
    const out = runner.step(prompts.map((p, b) => ({ tokenIds: [forced[b][t - 1]], startPosition: p.length + t - 1, blockTable: tables[b], slot: slots[b], sampling: greedy, returnLogits: true })));
    out.forEach((r, b) => {
      logits[b].push(r.logits as Float32Array);
      tokens[b].push(r.tokenId);
    });
  }
  return { logits, tokens };
}

/** Free-running greedy decoding of one prompt (prefill + numTokens - 1 decode steps), with each step's logits. */
export function freeGreedy(runner: ModelRunner, prompt: number[], slot: number, numTokens: number): { tokens: number[]; logits: Float32Array[] } {
  const table = Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => i);
  const first = runner.step([{ tokenIds: prompt, startPosition: 0, blockTable: table, slot, sampling: greedy, returnLogits: true }])[0];
  const tokens = [first.tokenId];
  const logits = [first.logits as Float32Array];
  for (let t = 1; t < numTokens; t++) {
    const r = runner.step([{ tokenIds: [tokens[t - 1]], startPosition: prompt.length + t - 1, blockTable: table, slot, sampling: greedy, returnLogits: true }])[0];
    tokens.push(r.tokenId);
    logits.push(r.logits as Float32Array);
  }
  return { tokens, logits };
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Difference between the largest and the second largest entry. */
export function top2Margin(x: ArrayLike<number>): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > a) {
      b = a;
      a = x[i];
    } else if (x[i] > b) b = x[i];
  }
  return a - b;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Whether an argmax that differs from the reference is a near-tie that rounding explains, judged at the two competing
 * ids (not by the largest error anywhere in the vocabulary): with Δ = got − want, the flip needs
 * Δ[gotId] − Δ[wantId] > want[wantId] − want[gotId] ≥ 0, and is excused only when that difference of two errors is
 * within NEAR_TIE_RMS × the step's RMS error (≈ 4.2 σ of a difference of two independent errors of RMS σ).
 */
export const NEAR_TIE_RMS = 6;
export function judgeNearTie(got: ArrayLike<number>, want: ArrayLike<number>, wantId: number, gotId: number): { excused: boolean; margin: number; flipError: number; rmsError: number } {
  let sq = 0;
  for (let i = 0; i < want.length; i++) sq += (got[i] - want[i]) ** 2;
  const rmsError = Math.sqrt(sq / want.length);
  const margin = want[wantId] - want[gotId];
  const flipError = (got[gotId] - want[gotId]) - (got[wantId] - want[wantId]);
  return { excused: flipError <= NEAR_TIE_RMS * rmsError, margin, flipError, rmsError };
}
export const describeNearTie = (t: ReturnType<typeof judgeNearTie>): string =>
  `margin ${t.margin.toExponential(2)}, Δ at the two ids ${t.flipError.toExponential(2)} vs ${NEAR_TIE_RMS} × RMS ${(NEAR_TIE_RMS * t.rmsError).toExponential(2)}`;

/** Writes logit rows back to back as raw float32 (the logits drivers' output, compared bitwise by their tests) and
 * returns a line naming the rows, the values and the TSLORA_CUDA_* switches of this process. */
export function writeLogitRows(file: string, parts: Float32Array[]): string {
  const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  writeFileSync(file, Buffer.from(all.buffer));
  const switches = Object.entries(process.env).filter(([k]) => k.startsWith('TSLORA_CUDA_')).map(([k, v]) => `${k}=${v}`).join(' ');
  return `${parts.length} logit rows, ${all.length} values; ${switches}`;
}
