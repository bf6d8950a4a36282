// The whole CUDA engine against PyTorch + PEFT on a random Llama-3.2-1B-shaped model (hidden 2048, 32/8 heads,
// intermediate 8192, vocab 128256, llama3 RoPE, tied embeddings; 4 layers by default) with rank 8 / 16 / 64 adapters.
// The model, adapters and fp32 references are generated on the GPU machine by scripts/device/make-1b-reference.py
// (too large to commit; scripts/device/gpu-suite.sh generates them in the same run); this test reads them through
// TSLORA_1B_REFERENCE=<dir>/reference.json. Without the variable it is skipped, with that reason, on a machine with
// no GPU, and FAILS where a GPU is required (nvidia-smi -L lists one, or TSLORA_REQUIRE_CUDA=1). TSLORA_1B_BACKEND=cpu runs the same checks on the CPU backend
// (a check of the reference script and of this test on small shapes, e.g. --hidden 256; not the GPU test).
//
// Checks, per compute dtype / LoRA strategy (bf16 csgmv, bf16 triton, f16 csgmv):
//  - teacher-forced 16 steps for the base model and each adapter (4 prompts of 7, 13, 21 and 45 tokens in one batch,
//    the reference tokens fed back): relative L2 of every step's logits against the fp32 PEFT logits ≤ TOLERANCE[dtype];
//    the 45-token prompt makes the triton runner's prefill a step with a > 32-row segment, which runs the wide tiled
//    expand (lora_expand_wide.cuh; csgmv's 16-row chunks never do);
//  - every step's argmax equals the reference greedy token, unless it is a near-tie judged at the two competing ids
//    (judgeNearTie in cuda-parity-helpers.ts; counted and logged), at most MAX_NEAR_TIES_PER_PROMPT per prompt; a
//    prompt without a near-tie must reproduce the 16 reference greedy tokens when decoding freely;
//  - bounds at ~1.5× the errors measured on an H200 (bench/cuda/results/h200-gpu-tests-run9.txt): bf16 ≤ 1.65e-2,
//    f16 ≤ 2.04e-3 relative L2, graphs vs eager 9.2e-3, triton vs csgmv 0, up to 5 near-ties in 48 steps;
//  - one mixed batch (base, r8, r16, r64 rows, different prompts) meets the same bounds row by row;
//  - triton and csgmv give the same logits (≤ sameEngine);
//  - a fourth runner, bf16 csgmv with decode CUDA graphs (cudaGraphMaxBatchSize 8), meets the same bounds, and its
//    logits stay within sameEngine of the eager bf16 csgmv runner.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend, type NativeBackend } from '../../src/binding/index.js';
import { readAdapter } from '../../src/engine/model/adapter.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import type { ModelRunner } from '../../src/engine/model/runner.js';
import { relativeL2 } from '../native/forward-reference.js';
import {
  argmax, BLOCK, BLOCKS_PER_SEQ, cudaBackendOrSkip, describeNearTie, freeGreedy, judgeNearTie, makeRunner, teacherForced, type LoadedFixture,
} from './cuda-parity-helpers.js';
// @ts-expect-error plain ESM helper without type declarations
import { gpuRequirement } from '../../scripts/test-run/gpu-requirement.mjs';

type Dtype = 'f16' | 'bf16';
const TOLERANCE: Record<Dtype, { logits: number; sameEngine: number }> = {
  f16: { logits: 3.1e-3, sameEngine: 3.1e-3 },
  bf16: { logits: 2.5e-2, sameEngine: 1.4e-2 },
};
const MAX_NEAR_TIES_PER_PROMPT = 5; // measured: up to 5 in one case over 3 prompts (vocabulary 128256)
const CPU_TOLERANCE = 1e-3; // the fp32 CPU backend against fp32 PyTorch
const WIDE_EXPAND_MIN_ROWS = 33; // DeviceLoraPool's wide tiled expand runs on steps with a segment of more rows than 32

interface Case { name: string; adapterPath: string | null; rank: number; greedy: number[][]; logitsFiles: string[] }
interface Reference { modelPath: string; vocabSize: number; greedyTokens: number; prompts: number[][]; cases: Case[] }

const refPath = process.env.TSLORA_1B_REFERENCE;
const useCpu = process.env.TSLORA_1B_BACKEND === 'cpu';
let backend: NativeBackend | null = null;
let skip: string | false = false;
const noReference = 'TSLORA_1B_REFERENCE is not set (generate it on the GPU machine with scripts/device/make-1b-reference.py; scripts/device/gpu-suite.sh does)';
const gpuRequired = gpuRequirement();
if (!refPath && !gpuRequired) skip = noReference;
else if (!refPath) it(`the 1B reference exists where a GPU is required (${gpuRequired})`, () => assert.fail(noReference));
else if (useCpu) backend = loadNativeBackend('cpu');
else ({ backend, skip } = cudaBackendOrSkip());

function readLogits(file: string, steps: number, vocab: number): Float32Array[] {
  const buf = readFileSync(file);
  assert.equal(buf.length, steps * vocab * 4, `${file}: expected ${steps} × ${vocab} float32`);
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  return Array.from({ length: steps }, (_, t) => all.subarray(t * vocab, (t + 1) * vocab));
}

describe(`CUDA engine vs PyTorch + PEFT on a 1B-shaped random model${useCpu ? ' (CPU backend plumbing check)' : ''}`, { skip: skip || (refPath ? false : noReference) }, () => {
  let ref: Reference;
  let root: string;
  let fx: LoadedFixture;
  const refLogits = new Map<string, Float32Array[][]>(); // case → [prompt][step] → V
  const runners: Array<{ label: string; dtype: Dtype; lb: 'csgmv' | 'triton'; runner: ModelRunner }> = [];
  const slotOf = new Map<string, number>([['__base__', -1]]);

  before(async () => {
    ref = JSON.parse(readFileSync(refPath!, 'utf8')) as Reference;
    root = dirname(refPath!);
    const longest = Math.max(...ref.prompts.map((p) => p.length));
    assert.ok(longest >= WIDE_EXPAND_MIN_ROWS,
      `the reference's prompts are at most ${longest} tokens: none reaches the wide expand (> 32 rows); regenerate it with scripts/device/make-1b-reference.py`);
    assert.ok(longest + ref.greedyTokens <= BLOCK * BLOCKS_PER_SEQ,
      `a ${longest}-token prompt + ${ref.greedyTokens} steps does not fit the runners' ${BLOCK * BLOCKS_PER_SEQ}-token KV tables`);
    const loaded = await loadModel(join(root, ref.modelPath));
    assert.equal(loaded.spec.vocabSize, ref.vocabSize);
    const adapters: LoadedFixture['adapters'] = [];
    for (const c of ref.cases) {
      refLogits.set(c.name, c.logitsFiles.map((f) => readLogits(join(root, f), ref.greedyTokens, ref.vocabSize)));
      if (c.adapterPath === null) continue;
      const { adapter } = await readAdapter(join(root, c.adapterPath), loaded.spec, { maxRank: 64, targetModules: null, strict: false });
      slotOf.set(c.name, adapters.length);
      adapters.push({ name: c.name, spec: adapter });
    }
    fx = { modelDir: join(root, ref.modelPath), loaded, adapters, skippedAdapters: [] };
    const configs: Array<[Dtype, 'csgmv' | 'triton']> = useCpu ? [['bf16', 'csgmv']] : [['bf16', 'csgmv'], ['bf16', 'triton'], ['f16', 'csgmv']];
    for (const [dtype, lb] of configs) {
      runners.push({ label: useCpu ? `cpu-f32/${lb}` : `${dtype}/${lb}`, dtype, lb, runner: await makeRunner(fx, backend!, lb, useCpu ? undefined : dtype) });
    }
    if (!useCpu) {
      // Decode steps of these batches (1, 4 and 5 sequences) replay CUDA graphs (buckets 1, 4 and 8).
      runners.push({ label: 'bf16/csgmv+graphs', dtype: 'bf16', lb: 'csgmv', runner: await makeRunner(fx, backend!, 'csgmv', 'bf16', undefined, 8) });
    }
  });
  after(() => {
    for (const r of runners) r.runner.destroy();
  });

  /** Teacher-forced rows against their references; failures collected, near-ties counted. */
  function checkRows(runner: ModelRunner, label: string, tol: number, rows: Array<{ caseName: string; prompt: number }>, failures: string[]) {
    const forced = rows.map((r) => ref.cases.find((c) => c.name === r.caseName)!.greedy[r.prompt]);
    const got = teacherForced(runner, rows.map((r) => ref.prompts[r.prompt]), rows.map((r) => slotOf.get(r.caseName)!), forced, ref.greedyTokens);
    let worst = 0;
    let nearTies = 0;
    const promptsWithoutTie: number[] = [];
    rows.forEach((r, i) => {
      let ties = 0;
      for (let s = 0; s < ref.greedyTokens; s++) {
        const want = refLogits.get(r.caseName)![r.prompt][s];
        const err = relativeL2(got.logits[i][s], want);
        worst = Math.max(worst, err);
        if (!(err < tol)) failures.push(`${label} ${r.caseName} prompt ${r.prompt} step ${s}: relative L2 ${err} ≥ ${tol}`);
        if (argmax(got.logits[i][s]) !== forced[i][s]) {
          const tie = judgeNearTie(got.logits[i][s], want, forced[i][s], argmax(got.logits[i][s]));
          if (!tie.excused) failures.push(`${label} ${r.caseName} prompt ${r.prompt} step ${s}: argmax ${argmax(got.logits[i][s])} ≠ reference ${forced[i][s]}, not a near-tie (${describeNearTie(tie)})`);
          nearTies++;
          ties++;
        }
      }
      if (ties > MAX_NEAR_TIES_PER_PROMPT) failures.push(`${label} ${r.caseName} prompt ${r.prompt}: ${ties} near-ties in ${ref.greedyTokens} steps (at most ${MAX_NEAR_TIES_PER_PROMPT})`);
      if (ties === 0) promptsWithoutTie.push(i);
    });
    return { got, worst, nearTies, promptsWithoutTie, forced };
  }

  it('base model and rank 8 / 16 / 64 adapters: logits and 16 greedy tokens, teacher-forced and free-running', () => {
    const failures: string[] = [];
    const byLabel = new Map<string, Float32Array[][][]>();
    for (const { label, dtype, runner } of runners) {
      const tol = useCpu ? CPU_TOLERANCE : TOLERANCE[dtype].logits;
      const all: Float32Array[][][] = [];
      for (const c of ref.cases) {
        const rows = ref.prompts.map((_, p) => ({ caseName: c.name, prompt: p }));
        const { got, worst, nearTies, promptsWithoutTie, forced } = checkRows(runner, label, tol, rows, failures);
        all.push(got.logits);
        let freeChecked = 0;
        let freeNearTies = 0;
        for (const i of promptsWithoutTie) {
          // Alone, a prompt runs other kernel paths than in the teacher-forced batch (the skinny decode GEMM takes
          // M ≤ 2 rows of every projection but only the small ones at M = 3), so its rounding noise differs: the
          // first divergence is judged by the same near-tie rule, on the free-running logits (same prefix there).
          const free = freeGreedy(runner, ref.prompts[i], slotOf.get(c.name)!, ref.greedyTokens);
          freeChecked++;
          const s = free.tokens.findIndex((tok, k) => tok !== forced[i][k]);
          if (s >= 0) {
            const want = refLogits.get(c.name)![i][s];
            const tie = judgeNearTie(free.logits[s], want, forced[i][s], free.tokens[s]);
            if (tie.excused) {
              freeNearTies++;
              console.log(`cuda-parity-1b ${label} ${c.name} prompt ${i}: free-running near-tie at step ${s} (${describeNearTie(tie)})`);
            } else {
              failures.push(`${label} ${c.name} prompt ${i}: free-running greedy [${free.tokens}] ≠ reference [${forced[i]}] at step ${s}, not a near-tie (${describeNearTie(tie)})`);
            }
          }
        }
        console.log(`cuda-parity-1b ${label} ${c.name} (r${c.rank}): max rel-L2 vs PEFT ${worst.toExponential(2)}, near-ties ${nearTies}/${rows.length * ref.greedyTokens}, free-running greedy checked on ${freeChecked}/${rows.length} prompts (${freeNearTies} near-tie divergences)`);
      }
      byLabel.set(label, all);
    }
    const a = byLabel.get('bf16/csgmv');
    for (const other of ['bf16/triton', 'bf16/csgmv+graphs']) {
      const b = byLabel.get(other);
      if (!a || !b) continue;
      let worst = 0;
      a.forEach((perCase, c) => perCase.forEach((steps, p) => steps.forEach((l, s) => (worst = Math.max(worst, relativeL2(l, b[c][p][s]))))));
      console.log(`cuda-parity-1b ${other} vs bf16/csgmv: max rel-L2 ${worst.toExponential(2)}`);
      if (!(worst < TOLERANCE.bf16.sameEngine)) failures.push(`${other} vs bf16/csgmv relative L2 ${worst}`);
    }
    assert.deepEqual(failures, []);
  });

  it('one mixed batch (base, r8, r16, r64 on different prompts) matches PEFT row by row', () => {
    const failures: string[] = [];
    const rows = ref.cases.map((c, i) => ({ caseName: c.name, prompt: i % ref.prompts.length }));
    for (const { label, dtype, runner } of runners) {
      const { worst, nearTies } = checkRows(runner, label, useCpu ? CPU_TOLERANCE : TOLERANCE[dtype].logits, rows, failures);
      console.log(`cuda-parity-1b ${label} mixed [${rows.map((r) => r.caseName)}]: max rel-L2 vs PEFT ${worst.toExponential(2)}, near-ties ${nearTies}/${rows.length * ref.greedyTokens}`);
    }
    assert.deepEqual(failures, []);
  });
});
