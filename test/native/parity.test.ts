// Parity with PyTorch + transformers + PEFT (fp32) on the committed fixtures (test/fixtures/README.md): last-position
// logits within 1e-3 relative L2 and 16 identical greedy tokens for the base model, every adapter and the mixed
// batches, on both LoRA strategies; mixed-batch rows equal the row alone; a chunked prefill equals the whole one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { relativeL2 } from './forward-reference.js';
import { assertChunkedPrefillMatches, BLOCK, BLOCKS_PER_SEQ, fillSlots, generate, loadParityFixture, PARITY_MODELS, readReference } from './parity-harness.js';

const LOGIT_TOLERANCE = 1e-3;
const backend = loadNativeBackend('cpu');

for (const model of PARITY_MODELS) {
  const ref = readReference(model);

  describe(`parity with PyTorch + PEFT: ${model}`, () => {
    const runners = new Map<'triton' | 'csgmv', ModelRunner>();
    let slotOf = new Map<string, number>();

    before(async () => {
      const { loaded, adapters, targets, maxRank } = await loadParityFixture(ref);
      for (const loraBackend of ['csgmv', 'triton'] as const) {
        const runner = new ModelRunner(loaded, {
          backend, kvNumBlocks: 8 * BLOCKS_PER_SEQ, kvBlockSize: BLOCK, loraSlots: adapters.length,
          loraMaxRank: maxRank, loraTargetModules: targets, loraBackend,
          maxLoraChunkSize: 16, numThreads: 2,
        });
        slotOf = await fillSlots(runner, ref, adapters);
        runners.set(loraBackend, runner);
      }
    });
    after(() => {
      for (const r of runners.values()) r.destroy();
    });

    const cases = [{ name: '__base__', prompts: ref.base }, ...ref.adapters.map((a) => ({ name: a.name, prompts: a.prompts }))];
    for (const c of cases) {
      it(`${c.name === '__base__' ? 'base model' : `adapter ${c.name}`}: logits and ${ref.greedyTokens} greedy tokens, both backends`, () => {
        const slot = c.name === '__base__' ? -1 : slotOf.get(c.name)!;
        const perBackend = new Map<string, Float32Array[]>();
        for (const [loraBackend, runner] of runners) {
          const got = generate(runner, ref.prompts, ref.prompts.map(() => slot), ref.greedyTokens);
          ref.prompts.forEach((_, p) => {
            const err = relativeL2(got.lastLogits[p], c.prompts[p].lastLogits);
            assert.ok(err < LOGIT_TOLERANCE, `${loraBackend} prompt ${p}: relative L2 ${err}`);
            assert.deepEqual(got.tokens[p], c.prompts[p].greedy, `${loraBackend} prompt ${p}: greedy tokens`);
          });
          perBackend.set(loraBackend, got.lastLogits);
        }
        // Same math, different fp32 accumulation order per strategy: agreement to ~1e-6, far inside the PEFT bound.
        const [a, b] = [...perBackend.values()];
        a.forEach((l, p) => assert.ok(relativeL2(l, b[p]) < 1e-5, `triton and csgmv agree (prompt ${p}): relative L2 ${relativeL2(l, b[p])}`));
      });
    }

    it('mixed batches: every row matches PEFT and equals the row run alone', () => {
      for (const batch of ref.mixedBatches) {
        const slots = batch.adapters.map((n) => (n === '__base__' ? -1 : slotOf.get(n)!));
        for (const [loraBackend, runner] of runners) {
          const got = generate(runner, batch.prompts, slots, ref.greedyTokens);
          batch.prompts.forEach((prompt, row) => {
            const err = relativeL2(got.lastLogits[row], batch.lastLogits[row]);
            assert.ok(err < LOGIT_TOLERANCE, `${loraBackend} [${batch.adapters}] row ${row}: relative L2 ${err}`);
            assert.deepEqual(got.tokens[row], batch.greedy[row], `${loraBackend} [${batch.adapters}] row ${row}: greedy`);
            const alone = generate(runner, [prompt], [slots[row]], ref.greedyTokens);
            // Batches of >= 16 rows take the packed GEMM, smaller ones the row-dot tiles: two fp32 summation orders, so
            // a row alone and in a batch agree to rounding (~1e-6), like a chunked and a whole prefill.
            const aloneErr = relativeL2(got.lastLogits[row], alone.lastLogits[0]);
            assert.ok(aloneErr < 1e-5, `row ${row} equals its run alone: relative L2 ${aloneErr}`);
            assert.deepEqual(got.tokens[row], alone.tokens[0]);
          });
        }
      }
    });

    it('a prompt prefilled in chunks over several steps equals the whole prefill', () => {
      assertChunkedPrefillMatches(runners.get('csgmv')!, ref);
    });
  });
}
