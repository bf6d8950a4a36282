// The LoRA shrink fused into the base projection's GEMM (LoraPool::fusedShrink: when every LoRA row of a step uses
// one slot, A_s rides along the base weights as one more GEMM part). Fused and unfused steps agree within fp32
// rounding for every pool dtype (f32, bf16, int8), in prefill and decode, with base rows mixed in; a step with two slots is never
// fused (bitwise the same either way); and the fused forward matches the float64 reference of the adapter.
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
const root = mkdtempSync(join(tmpdir(), 'tslora-fused-shrink-'));
after(() => {
  ops.setLoraShrinkFusion(true);
  rmSync(root, { recursive: true, force: true });
});

const model = writeRandomModel({ dir: join(root, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', keepValues: true, seed: 11 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const a1 = writeRandomAdapter(join(root, 'a1'), model.spec, 6, all7, 201, 2, true);
const a2 = writeRandomAdapter(join(root, 'a2'), model.spec, 4, ['q_proj', 'v_proj', 'down_proj'], 202, 2, true);
const prompt = [3, 17, 42, 5, 99, 0, 64, 23];

async function runner(loraPoolDtype: 'f32' | 'bf16' | 'int8'): Promise<ModelRunner> {
  const r = new ModelRunner(model, {
    backend, kvNumBlocks: 32, kvBlockSize: 4, loraSlots: 2, loraMaxRank: 8, loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
    loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2, loraPoolDtype,
  });
  for (const [slot, a] of [[0, a1], [1, a2]] as const) {
    const host = await r.loadHostAdapter(a.adapter);
    r.copyAdapterToSlot(slot, host);
    r.freeHostAdapter(host);
  }
  return r;
}

// A prefill of three sequences (slots given), then one decode step; the logits of every step, flattened.
function run(r: ModelRunner, slots: number[], fused: boolean): Float32Array[] {
  ops.setLoraShrinkFusion(fused);
  return prefillThenDecode(r, slots, prompt, 101);
}

describe('LoRA shrink fused into the base GEMM', () => {
  for (const dtype of ['f32', 'bf16', 'int8'] as const) {
    it(`${dtype} pool: fused = unfused within rounding (one slot with base rows), two slots unchanged`, async () => {
      const r = await runner(dtype);
      try {
        for (const slots of [[0], [0, -1, 0], [1, -1]]) {
          const fused = run(r, slots, true);
          const plain = run(r, slots, false);
          fused.forEach((l, i) => assert.ok(relativeL2(l, plain[i]) < 1e-6, `slots ${slots} row ${i}: ${relativeL2(l, plain[i])}`));
        }
        const mixed = [0, 1, -1];
        assert.deepEqual(run(r, mixed, true).map((l) => Array.from(l)), run(r, mixed, false).map((l) => Array.from(l)));
      } finally {
        r.destroy();
      }
    });
  }

  it('the fused forward matches the float64 reference of the adapter (prefill and decode)', async () => {
    const r = await runner('f32');
    try {
      const ref = referenceForward(model.spec, model.values, prompt, { values: a1.values, rank: 6, scaling: 2 });
      const [pre, dec] = run(r, [0], true);
      assert.ok(relativeL2(pre, ref[6]) < 1e-5, `prefill ${relativeL2(pre, ref[6])}`);
      assert.ok(relativeL2(dec, ref[7]) < 1e-5, `decode ${relativeL2(dec, ref[7])}`);
    } finally {
      r.destroy();
    }
  });
});
