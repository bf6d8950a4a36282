// The CPU KV cache in bf16 (ModelRunner option kvCacheDtype: 'bf16'): half the bytes of the fp32 cache, and the
// forward equals the float64 reference whose keys and values are rounded to bf16 as the cache stores them, i.e. the
// only change is the storage rounding (attention widens to fp32 and accumulates in fp32). Prompts long enough for
// the prefill attention path (blocks of keys transposed once per task) and the decode path, on one rank and on two
// tensor-parallel ranks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { rng, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const root = mkdtempSync(join(tmpdir(), 'tslora-kv-bf16-'));
after(() => rmSync(root, { recursive: true, force: true }));

// Head dim 24: not a multiple of the 8 (AVX2) / 16 (AVX-512) lanes, so the vector tails run too.
const model = writeRandomModel({ dir: join(root, 'model'), hidden: 96, intermediate: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 97, dtype: 'bf16', keepValues: true, seed: 9 });
const r = rng(3);
const prompt = Array.from({ length: 41 }, () => Math.floor(r() * 97));
const refRounded = referenceForward(model.spec, model.values, prompt, undefined, { kvBf16: true });
const refExact = referenceForward(model.spec, model.values, prompt);

function runner(kvCacheDtype: 'f32' | 'bf16', tpSize = 1): ModelRunner {
  return new ModelRunner(model, {
    backend, kvNumBlocks: 24, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [], loraBackend: 'csgmv',
    maxLoraChunkSize: 16, numThreads: 2, kvCacheDtype, tpSize,
  });
}

// Prefill of prompt[0, 38) in two chunks (21 + 17 rows), then three decode steps; logits of every step's last row.
function run(rn: ModelRunner): Float32Array[] {
  const blocks = Array.from({ length: 11 }, (_, i) => i);
  const seq = (start: number, end: number) => ({ tokenIds: prompt.slice(start, end), startPosition: start, blockTable: blocks, slot: -1, sampling: greedy, returnLogits: true });
  const out = [rn.step([seq(0, 21)])[0].logits!, rn.step([seq(21, 38)])[0].logits!];
  for (let p = 38; p < 41; p++) out.push(rn.step([seq(p, p + 1)])[0].logits!);
  return out;
}
const refRows = [20, 37, 38, 39, 40];

describe('CPU KV cache in bf16', () => {
  it('holds half the bytes and computes exactly the bf16-rounded keys and values (prefill chunks and decode)', () => {
    const f32 = runner('f32');
    const bf16 = runner('bf16');
    try {
      assert.equal(bf16.memoryReport().kvCacheBytes * 2, f32.memoryReport().kvCacheBytes);
      const got = run(bf16);
      const exact = run(f32);
      got.forEach((logits, i) => {
        const err = relativeL2(logits, refRounded[refRows[i]]);
        assert.ok(err < 2e-5, `step ${i}: relative L2 to the bf16-KV reference ${err}`);
        // The fp32 cache matches the exact reference; the bf16 one is measurably off it (the rounding is real).
        assert.ok(relativeL2(exact[i], refExact[refRows[i]]) < 2e-5, `step ${i}: fp32 cache ${relativeL2(exact[i], refExact[refRows[i]])}`);
        assert.ok(relativeL2(logits, refExact[refRows[i]]) > 4 * err, `step ${i}: bf16 rounding visible`);
      });
    } finally {
      f32.destroy();
      bf16.destroy();
    }
  });

  it('works under tensor parallelism (each rank caches its KV heads in bf16)', () => {
    const tp = runner('bf16', 2);
    try {
      run(tp).forEach((logits, i) => {
        const err = relativeL2(logits, refRounded[refRows[i]]);
        assert.ok(err < 2e-5, `TP 2 step ${i}: relative L2 ${err}`);
      });
    } finally {
      tp.destroy();
    }
  });

  it('refuses an unknown storage dtype', () => {
    assert.throws(() => runner('f16' as 'bf16'), /kvCacheDtype must be 'f32' or 'bf16'/);
  });
});
