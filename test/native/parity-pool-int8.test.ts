// Parity with PyTorch + PEFT (fp32, the committed fixtures) with the int8 CPU LoRA pool (--lora-pool-dtype int8,
// native/src/lora/lora.h PoolDType::I8). The pool quantizes every adapter, so its logits are held to a tolerance derived
// from each adapter's own quantization step instead of parity.test.ts's 1e-3:
//   tolerance = 1e-3 + 3 · stepBound(adapter) · relL2(PEFT logits with the adapter, PEFT base logits)
// - 1e-3: the fp32 engine's own parity bound (parity.test.ts);
// - stepBound (quantization-step.ts): the largest first-order relative change the quantization can make to any lora_A or
//   lora_B row's product with an input (each weight moves by at most half a step of 1/127 of its row's absmax);
// - relL2(adapter, base): how far the adapter moves the logits, i.e. what a relative change of its products scales;
// - 3: a margin for what the first order leaves out: the attention softmax and SiLU amplify a relative change of q/k/v
//   and gate/up by the size of their inputs, an adapter's effect on the logits can partly cancel while the
//   quantization errors do not, and the embedding adapter's A is gathered (one element per row) rather than multiplied.
// Greedy tokens are not asserted: the fixtures' smallest top-2 logit margin along PEFT's greedy path is 3e-3
// (reference minTop2Margin), below what any rounding of the adapters (the bf16 pool's too) is guaranteed to keep; the
// sequences that differ are reported as diagnostics (and in bench/results/cpu/issue17-int8-pool/README.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { AdapterSpec } from '../../src/engine/model/types.js';
import { relativeL2 } from './forward-reference.js';
import { BLOCK, BLOCKS_PER_SEQ, fillSlots, generate, loadParityFixture, PARITY_MODELS, readReference } from './parity-harness.js';
import { stepBound } from './quantization-step.js';

const backend = loadNativeBackend('cpu');

for (const model of PARITY_MODELS) {
  const ref = readReference(model);

  describe(`parity with PyTorch + PEFT, int8 LoRA pool: ${model}`, () => {
    const runners = new Map<'triton' | 'csgmv', ModelRunner>();
    let slotOf = new Map<string, number>();
    let adapters: AdapterSpec[] = [];

    before(async () => {
      const fixture = await loadParityFixture(ref);
      adapters = fixture.adapters;
      for (const loraBackend of ['csgmv', 'triton'] as const) {
        const runner = new ModelRunner(fixture.loaded, {
          backend, kvNumBlocks: 8 * BLOCKS_PER_SEQ, kvBlockSize: BLOCK, loraSlots: adapters.length,
          loraMaxRank: fixture.maxRank, loraTargetModules: fixture.targets, loraBackend,
          maxLoraChunkSize: 16, numThreads: 2, loraPoolDtype: 'int8',
        });
        slotOf = await fillSlots(runner, ref, adapters);
        runners.set(loraBackend, runner);
      }
    });
    after(() => {
      for (const r of runners.values()) r.destroy();
    });

    it('base model: unchanged by the pool (logits within 1e-3, greedy tokens equal)', () => {
      for (const [loraBackend, runner] of runners) {
        const got = generate(runner, ref.prompts, ref.prompts.map(() => -1), ref.greedyTokens);
        ref.prompts.forEach((_, p) => {
          assert.ok(relativeL2(got.lastLogits[p], ref.base[p].lastLogits) < 1e-3, `${loraBackend} prompt ${p}`);
          assert.deepEqual(got.tokens[p], ref.base[p].greedy);
        });
      }
    });

    ref.adapters.forEach((a, i) => {
      it(`adapter ${a.name}: logits within the quantization's tolerance, both backends`, (t) => {
        const step = stepBound(adapters[i]);
        for (const [loraBackend, runner] of runners) {
          const got = generate(runner, ref.prompts, ref.prompts.map(() => slotOf.get(a.name)!), ref.greedyTokens);
          ref.prompts.forEach((_, p) => {
            const effect = relativeL2(Float32Array.from(a.prompts[p].lastLogits), ref.base[p].lastLogits);
            const tolerance = 1e-3 + 3 * step * effect;
            const err = relativeL2(got.lastLogits[p], a.prompts[p].lastLogits);
            assert.ok(err < tolerance, `${loraBackend} prompt ${p}: relative L2 ${err} (tolerance ${tolerance}: step bound ${step}, adapter effect ${effect})`);
            // The tolerance is tighter than the adapter's own effect: a pool that dropped the adapter would fail.
            assert.ok(tolerance < effect / 4, `tolerance ${tolerance} vs effect ${effect}`);
            const same = JSON.stringify(got.tokens[p]) === JSON.stringify(a.prompts[p].greedy);
            if (!same && loraBackend === 'csgmv') t.diagnostic(`prompt ${p}: greedy tokens differ from PEFT's (relative L2 ${err.toExponential(2)})`);
          });
        }
      });
    });
  });
}
