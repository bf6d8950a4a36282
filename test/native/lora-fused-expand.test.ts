// The LoRA expand fused into the base GEMM's epilogue (LoraPool::fusedExpand: each GEMM thread adds B·u to the
// output columns it just wrote, once the fused shrink is done). On a model whose slices are not whole 16-column
// panels of the pool's Bᵀ (k / v and gate / up boundaries fall inside a panel), an odd rank (one k left over by the
// two-chain sum), q/k/v biases (added before the LoRA delta, as without the fusion) and base rows mixed in:
// the epilogue gives the bits of the separate expand pass for every pool dtype (f32, bf16, int8), however the GEMM cuts its column
// ranges, under every CPU kernel set this machine has (the epilogue's ranges also cut the base GEMM's: with AVX-512's
// 32-column packed panels a cut at an odd multiple of 16 once moved base columns between the packed path and the
// row-dot tiles, which sum in another order), and matches the float64 reference.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel } from './forward-random-model.js';
import { prefillThenDecode } from './lora-fusion-steps.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const ops = loadNativeTestingOps();
const root = mkdtempSync(join(tmpdir(), 'tslora-fused-expand-'));
// The expand's AVX-512 copy (native/src/lora/cpu_expand.h): switched explicitly here; selecting the kernel set
// again restores its default.
const isaDefault = ops.cpuKernelIsa().active;
const restoreWideDefault = () => ops.selectCpuKernelIsa(isaDefault);
const wideAvailable = ops.setLoraWideExpand(true);
restoreWideDefault();
after(() => {
  ops.setLoraExpandFusion(true);
  restoreWideDefault();
  rmSync(root, { recursive: true, force: true });
});

// headDim 12: q 48 | k 24 | v 24 columns; gate | up 72 each. Panels of 16 straddle the k/v and gate/up boundaries.
const model = writeRandomModel({ dir: join(root, 'model'), hidden: 48, intermediate: 72, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 97, dtype: 'bf16', qkvBias: true, keepValues: true, seed: 23 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const odd = writeRandomAdapter(join(root, 'odd'), model.spec, 5, all7, 301, 2, true);
const prompt = [3, 17, 42, 5, 96, 0, 64, 23];

async function runner(loraPoolDtype: 'f32' | 'bf16' | 'int8'): Promise<ModelRunner> {
  const r = new ModelRunner(model, {
    backend, kvNumBlocks: 32, kvBlockSize: 4, loraSlots: 2, loraMaxRank: 8, loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
    loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2, loraPoolDtype,
  });
  const host = await r.loadHostAdapter(odd.adapter);
  r.copyAdapterToSlot(1, host);
  r.freeHostAdapter(host);
  return r;
}

// A prefill of the sequences (7 tokens each: 21 rows take the packed GEMM), then one decode step; every row's logits.
function run(r: ModelRunner, slots: number[], fusedExpand: boolean): Float32Array[] {
  ops.setLoraExpandFusion(fusedExpand);
  return prefillThenDecode(r, slots, prompt, 97);
}

describe('LoRA expand fused into the base GEMM epilogue', () => {
  for (const dtype of ['f32', 'bf16', 'int8'] as const) {
    it(`${dtype} pool: the epilogue equals the separate expand pass bitwise (ragged panels, odd rank, biases, every kernel set)`, async () => {
      const r = await runner(dtype);
      const chunkDefault = ops.setGemmEpilogueChunks(0);
      try {
        for (const isa of ops.cpuKernelIsa().available) {
          ops.selectCpuKernelIsa(isa);
          for (const slots of [[1], [1, -1, 1], [-1, 1, 1]]) {
            ops.setGemmEpilogueChunks(0);
            const separate = run(r, slots, false).map((l) => Array.from(l));
            // The GEMM's chunks per thread (0: chosen from the expand's bytes) move the epilogue's column ranges.
            for (const chunks of [0, 1, 4, 16]) {
              ops.setGemmEpilogueChunks(chunks);
              assert.deepEqual(run(r, slots, true).map((l) => Array.from(l)), separate, `${isa} kernels, slots ${slots}, GEMM chunks per thread ${chunks || 'chosen'}`);
            }
          }
        }
      } finally {
        ops.setGemmEpilogueChunks(chunkDefault);
        restoreWideDefault();
        r.destroy();
      }
    });
  }

  // Both copies use FMA where the build's target has it (the default -march=native on every AVX-512 machine); an
  // x86-64-v2 build's 8-lane copy rounds each product apart, so it is held to the float64 bound below instead.
  const fmaBuild = (process.env.TSLORA_MARCH ?? 'native') === 'native';
  it('the AVX-512 expand gives the bits of the 8-lane one (fused and separate, every pool dtype)', { skip: !(wideAvailable && fmaBuild) && 'this CPU has no AVX-512 (or the build no FMA)' }, async () => {
    for (const dtype of ['f32', 'bf16', 'int8'] as const) {
      const r = await runner(dtype);
      try {
        for (const slots of [[1], [1, -1, 1]]) {
          ops.setLoraWideExpand(false);
          const narrow = run(r, slots, true).map((l) => Array.from(l));
          assert.equal(ops.setLoraWideExpand(true), true);
          for (const fused of [true, false]) assert.deepEqual(run(r, slots, fused).map((l) => Array.from(l)), narrow, `${dtype} slots ${slots} fused ${fused}`);
        }
      } finally {
        restoreWideDefault();
        r.destroy();
      }
    }
  });

  it('the fused forward matches the float64 reference of the adapter (prefill and decode)', async () => {
    const r = await runner('f32');
    try {
      const ref = referenceForward(model.spec, model.values, prompt, { values: odd.values, rank: 5, scaling: 2 });
      for (const wide of wideAvailable ? [false, true] : [false]) {
        ops.setLoraWideExpand(wide);
        const [pre, dec] = run(r, [1], true);
        assert.ok(relativeL2(pre, ref[6]) < 1e-5, `prefill ${relativeL2(pre, ref[6])} (AVX-512 expand ${wide})`);
        assert.ok(relativeL2(dec, ref[7]) < 1e-5, `decode ${relativeL2(dec, ref[7])} (AVX-512 expand ${wide})`);
      }
      restoreWideDefault();
      // The adapter moves the logits well beyond that bound (the comparison can fail).
      const base = referenceForward(model.spec, model.values, prompt);
      assert.ok(relativeL2(base[7], ref[7]) > 1e-3, `adapter effect ${relativeL2(base[7], ref[7])}`);
    } finally {
      r.destroy();
    }
  });
});
