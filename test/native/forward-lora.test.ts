// LoRA inside the native forward: every target module (fused qkv / gate_up slices, o, down, embed_tokens, lm_head)
// against the float64 JS reference with y += σ·(x·Aᵀ)·Bᵀ; mixed batches; both kernel strategies; stale slots.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const root = mkdtempSync(join(tmpdir(), 'tslora-forward-lora-'));
after(() => rmSync(root, { recursive: true, force: true }));


const model = writeRandomModel({ dir: join(root, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', keepValues: true, seed: 5 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const adapters = {
  all: writeRandomAdapter(join(root, 'a-all'), model.spec, 5, all7, 101, 2, true),
  qv: writeRandomAdapter(join(root, 'a-qv'), model.spec, 3, ['q_proj', 'v_proj', 'down_proj'], 202, 1.5, true),
  upOnly: writeRandomAdapter(join(root, 'a-up'), model.spec, 8, ['up_proj', 'o_proj'], 303, 0.5, true),
  embedHead: writeRandomAdapter(join(root, 'a-eh'), model.spec, 2, ['embed_tokens', 'lm_head', 'k_proj'], 404, 1, true),
};
type Name = keyof typeof adapters;
const prompts = [
  [3, 17, 42, 5, 99, 0, 64, 23],
  [9, 8, 7],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
  [50],
];

function reference(tokens: number[], name: Name | null): Float64Array {
  const lora = name ? { values: adapters[name].values, rank: adapters[name].adapter.rank, scaling: adapters[name].adapter.tensors[0].scaling } : undefined;
  const rows = referenceForward(model.spec, model.values, tokens, lora);
  return rows[rows.length - 1];
}

async function makeRunner(loraBackend: 'triton' | 'csgmv', slots = 5): Promise<{ runner: ModelRunner; slotOf: Map<Name, number> }> {
  const runner = new ModelRunner(model, {
    backend, kvNumBlocks: 64, kvBlockSize: 4, loraSlots: slots, loraMaxRank: 8,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'embed_tokens', 'lm_head'],
    loraBackend, maxLoraChunkSize: 16, numThreads: 2,
  });
  const slotOf = new Map<Name, number>();
  let slot = 0;
  for (const name of Object.keys(adapters) as Name[]) {
    if (slot >= slots) break;
    const host = await runner.loadHostAdapter(adapters[name].adapter);
    runner.copyAdapterToSlot(slot, host);
    runner.freeHostAdapter(host);
    slotOf.set(name, slot++);
  }
  return { runner, slotOf };
}

function seqFor(tokens: number[], slot: number, firstBlock: number): StepSequence {
  const blocks = Array.from({ length: Math.ceil(tokens.length / 4) + 1 }, (_, i) => firstBlock + i);
  return { tokenIds: tokens, startPosition: 0, blockTable: blocks, slot, sampling: greedy, returnLogits: true };
}

for (const loraBackend of ['csgmv', 'triton'] as const) {
  describe(`LoRA in the forward (${loraBackend})`, () => {
    it('each adapter alone matches the reference; base rows stay base', async () => {
      const { runner, slotOf } = await makeRunner(loraBackend);
      for (const [name, slot] of slotOf) {
        const [r] = runner.step([seqFor(prompts[0], slot, 0)]);
        const err = relativeL2(r.logits!, reference(prompts[0], name));
        assert.ok(err < 1e-5, `${name}: relative L2 ${err}`);
        assert.ok(relativeL2(r.logits!, reference(prompts[0], null)) > 1e-3, `${name} changes the output`);
      }
      const [b] = runner.step([seqFor(prompts[0], -1, 0)]);
      assert.ok(relativeL2(b.logits!, reference(prompts[0], null)) < 1e-5);
      runner.destroy();
    });

    it('a mixed batch (base, four adapters, uneven lengths) gives each row what it gets alone', async () => {
      const { runner, slotOf } = await makeRunner(loraBackend);
      const names: Array<Name | null> = [null, 'all', 'qv', 'upOnly', 'embedHead', 'all'];
      const seqs = names.map((n, i) => seqFor(prompts[i % prompts.length], n ? slotOf.get(n)! : -1, i * 8));
      const batched = runner.step(seqs);
      batched.forEach((r, i) => {
        const err = relativeL2(r.logits!, reference(prompts[i % prompts.length], names[i]));
        assert.ok(err < 1e-5, `row ${i} (${names[i] ?? 'base'}): relative L2 ${err}`);
      });
      // decode step for all rows together (one token each, many segments of length 1)
      const decode = runner.step(seqs.map((s, i) => ({ ...s, tokenIds: [batched[i].tokenId], startPosition: s.tokenIds.length })));
      decode.forEach((r, i) => {
        const tokens = [...prompts[i % prompts.length], batched[i].tokenId];
        assert.ok(relativeL2(r.logits!, reference(tokens, names[i])) < 1e-5, `decode row ${i}`);
      });
      runner.destroy();
    });
  });
}

describe('LoRA slots', () => {
  it('triton and csgmv agree on a 64-token batch over every adapter', async () => {
    const a = await makeRunner('csgmv');
    const b = await makeRunner('triton');
    const names: Array<Name | null> = ['all', null, 'qv', 'embedHead', 'upOnly', 'qv', 'all', null];
    const seqs = names.map((n, i) => seqFor(prompts[2].slice(0, 8 + i), n ? a.slotOf.get(n)! : -1, i * 8));
    const ra = a.runner.step(seqs);
    const rb = b.runner.step(seqs);
    ra.forEach((r, i) => assert.ok(relativeL2(r.logits!, rb[i].logits!) < 1e-6, `row ${i}`));
    a.runner.destroy();
    b.runner.destroy();
  });

  it('a lower-rank adapter written over a higher-rank one in the same slot reads no stale data', async () => {
    const { runner } = await makeRunner('csgmv', 1); // slot 0 = "all" (rank 5)
    for (const name of ['upOnly', 'qv', 'embedHead', 'all', 'qv'] as Name[]) {
      const host = await runner.loadHostAdapter(adapters[name].adapter);
      await runner.copyAdapterToSlotAsync(0, host);
      const [r] = runner.step([seqFor(prompts[0], 0, 0)]);
      assert.ok(relativeL2(r.logits!, reference(prompts[0], name)) < 1e-5, `${name} after a previous occupant`);
      runner.freeHostAdapter(host);
    }
    runner.clearSlot(0);
    const [r] = runner.step([seqFor(prompts[0], 0, 0)]);
    assert.ok(relativeL2(r.logits!, reference(prompts[0], null)) < 1e-5, 'a cleared slot is the base model');
    runner.destroy();
  });

  it('host adapters are counted in memoryReport and freed', async () => {
    const { runner } = await makeRunner('csgmv', 2);
    const before = runner.memoryReport();
    assert.ok(before.loraPoolBytes > 0);
    const host = await runner.loadHostAdapter(adapters.all.adapter);
    const size = runner.hostAdapterSizeBytes(host);
    assert.ok(size > 0);
    assert.equal(runner.memoryReport().hostAdapterBytes, before.hostAdapterBytes + size);
    runner.freeHostAdapter(host);
    assert.equal(runner.memoryReport().hostAdapterBytes, before.hostAdapterBytes);
    assert.throws(() => runner.copyAdapterToSlot(0, host), /freed/);
    assert.throws(() => runner.copyAdapterToSlot(7, host), /slot/);
    runner.destroy();
  });

  it('segment tables that name a missing slot, overlap or exceed the chunk are rejected', async () => {
    const { runner } = await makeRunner('csgmv', 2);
    const handle = (runner as unknown as { model: never }).model;
    const good = runner.buildStepInput([seqFor(prompts[1], 0, 0)]).step;
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ loraWeightIndices: Int32Array.from([2]) }, /not a slot/],
      [{ loraWeightIndices: Int32Array.from([-2]) }, /not a slot/],
      [{ loraSegIndptr: Int32Array.from([0, 2]) }, /end at T/],
      [{ loraPermutation: Int32Array.from([0, 0, 1]) }, /permutation/],
      [{ loraChunkSize: 2 }, /more than loraChunkSize/],
    ];
    for (const [patch, message] of bad) assert.throws(() => backend.forward(handle, { ...good, ...patch }), message);
    assert.equal(runner.step([seqFor(prompts[1], 0, 0)]).length, 1);
    runner.destroy();
  });
});
