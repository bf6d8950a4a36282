// Tensor parallelism on shapes the fixtures do not have (native/src/cpu/tp): a random qwen3-style model with ONE
// KV head (replicated on every rank), head_dim 32 (q width 128 ≠ hidden 64), qkv biases, q/k norms, tied
// embeddings and a vocabulary of 101 (uneven vocab-parallel ranges: 50/51 and 25/25/25/26), with adapters on all
// seven linear modules and on embed_tokens + lm_head (+ k_proj). TP 2 and 4 against the float64 JS reference and
// TP 1: one mixed batch (base and three adapters, uneven lengths) and a decode step, both LoRA backends; with the
// bf16 LoRA pool, against TP 1; with the int8 pool, against the unquantized adapter.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence, StepSequenceResult } from '../../src/engine/model/runner-types.js';
import type { LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const root = mkdtempSync(join(tmpdir(), 'tslora-tp-random-'));
after(() => rmSync(root, { recursive: true, force: true }));

const model = writeRandomModel({
  dir: join(root, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 1, headDim: 32, vocab: 101,
  dtype: 'bf16', tieWordEmbeddings: true, qkvBias: true, qkNorm: true, keepValues: true, seed: 16,
});
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const adapters = [
  writeRandomAdapter(join(root, 'a-all'), model.spec, 5, all7, 161, 2, true),
  writeRandomAdapter(join(root, 'a-eh'), model.spec, 3, ['embed_tokens', 'lm_head', 'k_proj'], 162, 1, true),
  writeRandomAdapter(join(root, 'a-od'), model.spec, 8, ['o_proj', 'down_proj'], 163, 0.5, true),
];
// Rows: base, then each adapter; prompts cover both ends of the vocabulary (ids 0, 50, 51, 100 sit on range edges).
const rows = [
  { slot: -1, tokens: [3, 50, 51, 100, 0, 25] },
  { slot: 0, tokens: [99, 26, 75, 76] },
  { slot: 1, tokens: [100, 0, 49, 50, 51, 74, 75, 12, 13] },
  { slot: 2, tokens: [7] },
];

function reference(tokens: number[], slot: number): Float64Array {
  const a = slot >= 0 ? adapters[slot] : null;
  const lora = a ? { values: a.values, rank: a.adapter.rank, scaling: a.adapter.tensors[0].scaling } : undefined;
  const out = referenceForward(model.spec, model.values, tokens, lora);
  return out[out.length - 1];
}

async function run(tpSize: number, loraBackend: 'csgmv' | 'triton', loraPoolDtype: 'f32' | 'bf16' | 'int8' = 'f32'): Promise<{ prefill: StepSequenceResult[]; decode: StepSequenceResult[] }> {
  const runner = new ModelRunner(model, {
    backend, kvNumBlocks: 64, kvBlockSize: 4, loraSlots: adapters.length, loraMaxRank: 8,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'embed_tokens', 'lm_head'],
    loraBackend, maxLoraChunkSize: 16, numThreads: 2, tpSize, loraPoolDtype,
  });
  try {
    for (let s = 0; s < adapters.length; s++) {
      const host = await runner.loadHostAdapter(adapters[s].adapter);
      await runner.copyAdapterToSlotAsync(s, host);
      runner.freeHostAdapter(host);
    }
    const seqs: StepSequence[] = rows.map((r, i) => ({
      tokenIds: r.tokens, startPosition: 0, blockTable: [i * 4, i * 4 + 1, i * 4 + 2, i * 4 + 3], slot: r.slot, sampling: greedy, returnLogits: true,
    }));
    const prefill = runner.step(seqs);
    const decode = runner.step(seqs.map((s, i) => ({ ...s, tokenIds: [prefill[i].tokenId], startPosition: s.tokenIds.length })));
    return { prefill, decode };
  } finally {
    runner.destroy();
  }
}

for (const loraBackend of ['csgmv', 'triton'] as const) {
  describe(`tensor parallelism on a random model with one KV head and an uneven vocabulary (${loraBackend})`, () => {
    it('TP 2 and 4 match the float64 reference and TP 1, prefill and decode', async () => {
      const single = await run(1, loraBackend);
      for (const tpSize of [2, 4]) {
        const got = await run(tpSize, loraBackend);
        rows.forEach((r, i) => {
          const where = `TP ${tpSize} row ${i} (slot ${r.slot})`;
          const prefillErr = relativeL2(got.prefill[i].logits!, reference(r.tokens, r.slot));
          assert.ok(prefillErr < 1e-5, `${where} prefill: relative L2 to the reference ${prefillErr}`);
          const decodeErr = relativeL2(got.decode[i].logits!, reference([...r.tokens, got.prefill[i].tokenId], r.slot));
          assert.ok(decodeErr < 1e-5, `${where} decode: relative L2 to the reference ${decodeErr}`);
          assert.ok(relativeL2(got.decode[i].logits!, single.decode[i].logits!) < 1e-5, `${where}: against TP 1`);
          assert.equal(got.prefill[i].tokenId, single.prefill[i].tokenId, `${where}: greedy token against TP 1`);
        });
      }
    });
  });
}

describe('tensor parallelism with the bf16 LoRA pool', () => {
  it('every rank stores the same bf16-rounded slices: TP 2 and 4 equal TP 1 within fp32 rounding', async () => {
    const single = await run(1, 'csgmv', 'bf16');
    for (const tpSize of [2, 4]) {
      const got = await run(tpSize, 'csgmv', 'bf16');
      rows.forEach((r, i) => {
        const err = relativeL2(got.decode[i].logits!, single.decode[i].logits!);
        assert.ok(err < 1e-5, `TP ${tpSize} row ${i} (slot ${r.slot}): relative L2 to TP 1 ${err}`);
        assert.equal(got.prefill[i].tokenId, single.prefill[i].tokenId);
      });
    }
  });
});

// The int8 pool quantizes each rank's slice of the adapter (the host tier converts per rank): column-parallel
// modules (q/k/v, gate/up, lm_head) get the same rows and scales as TP 1, but a row-parallel module's lora_A row
// (o_proj, down_proj: split along its input) is quantized per slice with the slice's own absmax, a step no larger
// than the whole row's. So TP 2 and 4 are not TP 1's bits; each is the adapter within the same quantization step, and
// they stay as close to the unquantized (fp32 pool) logits as TP 1 does: within twice TP 1's distance (measured here
// 0.98-1.19x of it).
describe('tensor parallelism with the int8 LoRA pool', () => {
  it('TP 2 and 4 stay as close to the unquantized adapter as TP 1, and differ from it only by the quantization', async () => {
    const exact = await run(1, 'csgmv', 'f32');
    const single = await run(1, 'csgmv', 'int8');
    for (const tpSize of [2, 4]) {
      const got = await run(tpSize, 'csgmv', 'int8');
      rows.forEach((r, i) => {
        const tp1 = relativeL2(single.decode[i].logits!, exact.decode[i].logits!);
        const err = relativeL2(got.decode[i].logits!, exact.decode[i].logits!);
        if (r.slot < 0) assert.ok(err < 1e-5, `TP ${tpSize} base row ${i}: ${err}`);
        else assert.ok(err <= 2 * tp1 + 1e-5, `TP ${tpSize} row ${i} (slot ${r.slot}): ${err} from the fp32 pool, TP 1 ${tp1}`);
      });
    }
  });
});
