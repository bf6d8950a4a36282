// The CPU host tier in the pool's own format (native/src/lora/slot_image.h): an adapter is converted to the pool's
// dtype and slot layout once when it enters the host tier (loadHostAdapter, on the libuv worker; under tensor
// parallelism once per rank's slice), and every slot load after that is a plain copy: the process-wide conversion
// counter (testing op loraSlotConversions) does not move on slot loads. The logits of a slot loaded from the image
// equal the float64 reference (fp32 pool) and do not depend on the slot, its earlier occupant or the load path.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const ops = loadNativeTestingOps();
const root = mkdtempSync(join(tmpdir(), 'tslora-host-tier-format-'));
after(() => rmSync(root, { recursive: true, force: true }));

const model = writeRandomModel({ dir: join(root, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', keepValues: true, seed: 11 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const big = writeRandomAdapter(join(root, 'big'), model.spec, 8, [...all7, 'embed_tokens', 'lm_head'], 31, 2, true);
const small = writeRandomAdapter(join(root, 'small'), model.spec, 3, ['q_proj', 'v_proj'], 32, 0.5, true);
const prompt = [3, 17, 42, 5, 99, 0, 64, 23];

function reference(a: typeof big): Float64Array {
  const out = referenceForward(model.spec, model.values, prompt, { values: a.values, rank: a.adapter.rank, scaling: a.adapter.tensors[0].scaling });
  return out[out.length - 1];
}

function logitsOf(runner: ModelRunner, slot: number): Float32Array {
  const [r] = runner.step([{ tokenIds: prompt, startPosition: 0, blockTable: [0, 1], slot, sampling: greedy, returnLogits: true }]);
  return r.logits!;
}

for (const tpSize of [1, 2]) {
  for (const loraPoolDtype of ['f32', 'bf16', 'int8'] as const) {
    describe(`CPU host tier in the pool's format (TP ${tpSize}, ${loraPoolDtype} pool)`, () => {
      it('converts once per host-tier entry; slot loads (sync and async, any slot, after any occupant) only copy', async () => {
        const runner = new ModelRunner(model, {
          backend, kvNumBlocks: 8, kvBlockSize: 4, loraSlots: 3, loraMaxRank: 8,
          loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'embed_tokens', 'lm_head'],
          loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2, tpSize, loraPoolDtype,
        });
        try {
          const start = ops.loraSlotConversions();
          const bigHost = await runner.loadHostAdapter(big.adapter);
          const smallHost = await runner.loadHostAdapter(small.adapter);
          assert.equal(ops.loraSlotConversions() - start, 2 * tpSize, 'one conversion per adapter and rank slice');
          // The images are what the host tier counts.
          assert.equal(runner.memoryReport().hostAdapterBytes, runner.hostAdapterSizeBytes(bigHost) + runner.hostAdapterSizeBytes(smallHost));

          runner.copyAdapterToSlot(0, bigHost);
          const first = logitsOf(runner, 0);
          if (loraPoolDtype === 'f32') assert.ok(relativeL2(first, reference(big)) < 1e-5, `relative L2 ${relativeL2(first, reference(big))}`);
          runner.copyAdapterToSlot(0, smallHost); // the rank-3 q/v adapter over the rank-8 all-module one
          const smallLogits = logitsOf(runner, 0);
          if (loraPoolDtype === 'f32') assert.ok(relativeL2(smallLogits, reference(small)) < 1e-5, 'stale rank-8 data is never read');
          for (let round = 0; round < 3; round++) {
            for (const slot of [0, 1, 2]) {
              await runner.copyAdapterToSlotAsync(slot, smallHost);
              await runner.copyAdapterToSlotAsync(slot, bigHost);
              assert.deepEqual(logitsOf(runner, slot), first, `slot ${slot}, round ${round}: same logits from the image`);
            }
          }
          runner.copyAdapterToSlot(1, smallHost);
          assert.deepEqual(logitsOf(runner, 1), smallLogits);
          assert.equal(ops.loraSlotConversions() - start, 2 * tpSize, 'no conversion on any of the 20 slot loads');
          runner.freeHostAdapter(bigHost);
          runner.freeHostAdapter(smallHost);
          assert.equal(runner.memoryReport().hostAdapterBytes, 0);
        } finally {
          runner.destroy();
        }
      });
    });
  }
}
