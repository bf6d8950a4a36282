// The CPU LoRA pool in bf16 (ModelRunner option loraPoolDtype: 'bf16'): half the bytes of the fp32 pool, and the
// forward equals the float64 reference run with the adapter as the pool stores it (A rounded to bf16, B with the
// scaling folded in rounded to bf16), i.e. the only change is the storage rounding; fp32 accumulation throughout.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { LoraModuleName } from '../../src/engine/model/types.js';
import { fromBf16Bits, toBf16Bits, writeRandomAdapter, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const root = mkdtempSync(join(tmpdir(), 'tslora-pool-bf16-'));
after(() => rmSync(root, { recursive: true, force: true }));

const model = writeRandomModel({ dir: join(root, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', keepValues: true, seed: 5 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const scaling = 2; // a power of two: B·s rounded to bf16, divided by s again, is exact in float32
const { adapter, values } = writeRandomAdapter(join(root, 'adapter'), model.spec, 5, all7, 101, scaling, true);
const prompt = [3, 17, 42, 5, 99, 0, 64, 23];

const roundBf16 = (x: Float32Array) => Float32Array.from(x, (v) => fromBf16Bits(toBf16Bits(v)));
const stored = new Map([...values].map(([name, v]): [string, Float32Array] => [
  name,
  name.includes('lora_B') ? Float32Array.from(roundBf16(v.map((z) => Math.fround(z * scaling))), (z) => z / scaling) : roundBf16(v),
]));

async function runner(loraPoolDtype: 'f32' | 'bf16'): Promise<ModelRunner> {
  const r = new ModelRunner(model, {
    backend, kvNumBlocks: 16, kvBlockSize: 4, loraSlots: 2, loraMaxRank: 8, loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
    loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2, loraPoolDtype,
  });
  const host = await r.loadHostAdapter(adapter);
  r.copyAdapterToSlot(1, host);
  r.freeHostAdapter(host);
  return r;
}

describe('CPU LoRA pool in bf16', () => {
  it('holds half the bytes and computes exactly the bf16-rounded adapter (prefill and decode)', async () => {
    const f32 = await runner('f32');
    const bf16 = await runner('bf16');
    try {
      assert.equal(bf16.memoryReport().loraPoolBytes * 2, f32.memoryReport().loraPoolBytes);
      const refRounded = referenceForward(model.spec, model.values, prompt, { values: stored, rank: 5, scaling });
      const refExact = referenceForward(model.spec, model.values, prompt, { values, rank: 5, scaling });
      const blocks = [0, 1, 2];
      const [pre] = bf16.step([{ tokenIds: prompt.slice(0, 7), startPosition: 0, blockTable: blocks, slot: 1, sampling: greedy, returnLogits: true }]);
      assert.ok(relativeL2(pre.logits!, refRounded[6]) < 1e-5, `prefill: relative L2 ${relativeL2(pre.logits!, refRounded[6])}`);
      const [dec] = bf16.step([{ tokenIds: [prompt[7]], startPosition: 7, blockTable: blocks, slot: 1, sampling: greedy, returnLogits: true }]);
      assert.ok(relativeL2(dec.logits!, refRounded[7]) < 1e-5, `decode: relative L2 ${relativeL2(dec.logits!, refRounded[7])}`);
      // The fp32 pool follows the unrounded adapter; the two references differ (the test can tell them apart).
      const [full] = f32.step([{ tokenIds: prompt, startPosition: 0, blockTable: blocks, slot: 1, sampling: greedy, returnLogits: true }]);
      assert.ok(relativeL2(full.logits!, refExact[7]) < 1e-5);
      assert.ok(relativeL2(refRounded[7], refExact[7]) > 1e-4, 'rounding the adapter changes the reference');
    } finally {
      f32.destroy();
      bf16.destroy();
    }
  });

  it('rejects an unknown pool dtype', () => {
    assert.throws(
      () => new ModelRunner(model, { backend, kvNumBlocks: 4, kvBlockSize: 4, loraSlots: 1, loraMaxRank: 8, loraTargetModules: ['o_proj'], loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 1, loraPoolDtype: 'f16' as 'bf16' }),
      /loraPoolDtype must be 'f32', 'bf16' or 'int8'/,
    );
  });
});
