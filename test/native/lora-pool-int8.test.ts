// The CPU LoRA pool in int8 (ModelRunner option loraPoolDtype: 'int8', native/src/lora/lora.h PoolDType::I8): the
// codes plus their fp32 scales take the bytes the engine budgets for them (kv-sizing.ts), and the forward equals the
// float64 reference run with the adapter as the pool quantizes it (lora.h's rules, written out again below: one
// absmax scale per lora_A row and per output feature of lora_B after the scaling is folded in, codes rounded to
// nearest even), in prefill (the fused shrink on the packed GEMM path) and decode (the GEMV path).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { LoraModuleName, LoraTargetModule } from '../../src/engine/model/types.js';
import { loraPoolBytes, loraPoolScaleBytes } from '../../src/engine/worker/kv-sizing.js';
import { writeRandomAdapter, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const root = mkdtempSync(join(tmpdir(), 'tslora-pool-int8-'));
after(() => rmSync(root, { recursive: true, force: true }));

const model = writeRandomModel({ dir: join(root, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', keepValues: true, seed: 5 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const targets: LoraTargetModule[] = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];
const rank = 5;
const scaling = 2; // a power of two: the folded B divided by it again is exact
const { adapter, values } = writeRandomAdapter(join(root, 'adapter'), model.spec, rank, all7, 101, scaling, true);
const prompt = [3, 17, 42, 5, 99, 0, 64, 23];

/** Round half to even (the pool's std::nearbyint in the default rounding mode). */
const rne = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
/** Rows of v [rows, cols] → their dequantized values, each row with its own absmax scale (all in fp32 steps). */
function dequantizeRows(v: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < v.length / cols; r++) {
    let m = 0;
    for (let k = 0; k < cols; k++) m = Math.max(m, Math.abs(v[r * cols + k]));
    const s = Math.fround(m / 127);
    for (let k = 0; k < cols; k++) {
      const code = s === 0 ? 0 : Math.min(127, Math.max(-127, rne(Math.fround(v[r * cols + k] / s))));
      out[r * cols + k] = code * s;
    }
  }
  return out;
}
// A [rank, in] by rows; B [out, rank] by rows (an output feature each) after folding the scaling in fp32.
const stored = new Map([...values].map(([name, v]): [string, Float32Array] => [
  name,
  name.includes('lora_B') ? dequantizeRows(v.map((z) => Math.fround(z * scaling)), rank).map((z) => z / scaling) : dequantizeRows(v, v.length / rank),
]));

async function runner(loraPoolDtype: 'f32' | 'int8'): Promise<ModelRunner> {
  const r = new ModelRunner(model, {
    backend, kvNumBlocks: 16, kvBlockSize: 4, loraSlots: 2, loraMaxRank: 8, loraTargetModules: targets,
    loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2, loraPoolDtype,
  });
  const host = await r.loadHostAdapter(adapter);
  r.copyAdapterToSlot(1, host);
  r.freeHostAdapter(host);
  return r;
}

describe('CPU LoRA pool in int8', () => {
  it('holds the codes and scales the engine budgets, and computes exactly the quantized adapter (prefill and decode)', async () => {
    const f32 = await runner('f32');
    const int8 = await runner('int8');
    try {
      const bytes = int8.memoryReport().loraPoolBytes;
      assert.equal(bytes, loraPoolBytes(model.spec, 2, 8, targets, 1) + loraPoolScaleBytes(model.spec, 2, 8, targets));
      assert.equal(f32.memoryReport().loraPoolBytes, loraPoolBytes(model.spec, 2, 8, targets, 4));
      const refQuantized = referenceForward(model.spec, model.values, prompt, { values: stored, rank, scaling });
      const refExact = referenceForward(model.spec, model.values, prompt, { values, rank, scaling });
      const blocks = [0, 1, 2];
      const [pre] = int8.step([{ tokenIds: prompt.slice(0, 7), startPosition: 0, blockTable: blocks, slot: 1, sampling: greedy, returnLogits: true }]);
      assert.ok(relativeL2(pre.logits!, refQuantized[6]) < 1e-5, `prefill: relative L2 ${relativeL2(pre.logits!, refQuantized[6])}`);
      const [dec] = int8.step([{ tokenIds: [prompt[7]], startPosition: 7, blockTable: blocks, slot: 1, sampling: greedy, returnLogits: true }]);
      assert.ok(relativeL2(dec.logits!, refQuantized[7]) < 1e-5, `decode: relative L2 ${relativeL2(dec.logits!, refQuantized[7])}`);
      // Quantizing moves the reference well beyond that bound (the comparison can tell the two apart).
      assert.ok(relativeL2(refQuantized[7], refExact[7]) > 1e-4, `quantization effect ${relativeL2(refQuantized[7], refExact[7])}`);
    } finally {
      f32.destroy();
      int8.destroy();
    }
  });
});
