// Parity with PyTorch + transformers + PEFT (fp32) on the committed fixtures (test/fixtures/README.md): last-position
// logits within 1e-3 relative L2 and 16 identical greedy tokens for the base model, every adapter and the mixed
// batches, on both LoRA strategies; mixed-batch rows equal the row alone; a chunked prefill equals the whole one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { readAdapter } from '../../src/engine/model/adapter.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, LoraTargetModule } from '../../src/engine/model/types.js';
import { relativeL2 } from './forward-reference.js';

const FIXTURES = 'test/fixtures';
const LOGIT_TOLERANCE = 1e-3;
const backend = loadNativeBackend('cpu');

interface PromptReference {
  lastLogits: number[];
  greedy: number[];
}
interface Reference {
  modelPath: string;
  greedyTokens: number;
  prompts: number[][];
  base: PromptReference[];
  adapters: Array<{ name: string; path: string; prompts: PromptReference[] }>;
  mixedBatches: Array<{ adapters: string[]; prompts: number[][]; lastLogits: number[][]; greedy: number[][] }>;
}

const greedy: StepSampling = {
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: false,
};
const BLOCK = 4;
const BLOCKS_PER_SEQ = 16;

/** Greedy decoding of several sequences in one batch: prefill (optionally in chunks), then one token per step. */
function generate(runner: ModelRunner, prompts: number[][], slots: number[], numTokens: number, chunk = 0): { lastLogits: Float32Array[]; tokens: number[][] } {
  const tables = prompts.map((_, b) => Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => b * BLOCKS_PER_SEQ + i));
  const maxLen = Math.max(...prompts.map((p) => p.length));
  const step = chunk > 0 ? chunk : maxLen;
  let first: ReturnType<ModelRunner['step']> = [];
  // Prefill in chunks of `step` tokens per sequence (sequences that finished their prompt wait).
  const results = new Array(prompts.length);
  for (let start = 0; start < maxLen; start += step) {
    const seqs: StepSequence[] = [];
    const index: number[] = [];
    prompts.forEach((p, b) => {
      if (start >= p.length) return;
      const end = Math.min(p.length, start + step);
      seqs.push({ tokenIds: p.slice(start, end), startPosition: start, blockTable: tables[b], slot: slots[b], sampling: end === p.length ? greedy : null, returnLogits: true });
      index.push(b);
    });
    first = runner.step(seqs);
    first.forEach((r, i) => {
      if (r.tokenId >= 0) results[index[i]] = r;
    });
  }
  const tokens = results.map((r) => [r.tokenId]);
  const lastLogits = results.map((r) => r.logits as Float32Array);
  for (let t = 1; t < numTokens; t++) {
    const out = runner.step(
      prompts.map((p, b) => ({ tokenIds: [tokens[b][t - 1]], startPosition: p.length + t - 1, blockTable: tables[b], slot: slots[b], sampling: greedy })),
    );
    out.forEach((r, b) => tokens[b].push(r.tokenId));
  }
  return { lastLogits, tokens };
}

for (const model of ['tiny-llama', 'tiny-qwen2', 'tiny-qwen3']) {
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', `${model}.json`), 'utf8')) as Reference;
  const modelDir = join(FIXTURES, ref.modelPath);

  describe(`parity with PyTorch + PEFT: ${model}`, () => {
    const runners = new Map<'triton' | 'csgmv', ModelRunner>();
    const slotOf = new Map<string, number>();

    before(async () => {
      const loaded = await loadModel(modelDir);
      const adapters: AdapterSpec[] = [];
      for (const a of ref.adapters) {
        const { adapter } = await readAdapter(join(modelDir, a.path), loaded.spec, { maxRank: 64, targetModules: null, strict: false });
        adapters.push(adapter);
      }
      const targets = [...new Set(adapters.flatMap((a) => a.targetModules))] as LoraTargetModule[];
      for (const loraBackend of ['csgmv', 'triton'] as const) {
        const runner = new ModelRunner(loaded, {
          backend, kvNumBlocks: 8 * BLOCKS_PER_SEQ, kvBlockSize: BLOCK, loraSlots: adapters.length,
          loraMaxRank: Math.max(...adapters.map((a) => a.rank)), loraTargetModules: targets, loraBackend,
          maxLoraChunkSize: 16, numThreads: 2,
        });
        for (let s = 0; s < adapters.length; s++) {
          const host = await runner.loadHostAdapter(adapters[s]);
          runner.copyAdapterToSlot(s, host);
          runner.freeHostAdapter(host);
          slotOf.set(ref.adapters[s].name, s);
        }
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
            assert.ok(relativeL2(got.lastLogits[row], alone.lastLogits[0]) < 1e-6, `row ${row} equals its run alone`);
            assert.deepEqual(got.tokens[row], alone.tokens[0]);
          });
        }
      }
    });

    it('a prompt prefilled in chunks over several steps equals the whole prefill', () => {
      const runner = runners.get('csgmv')!;
      const slots = ref.prompts.map((_, i) => (i % 2 === 0 ? -1 : ref.adapters.length - 1 - i));
      const whole = generate(runner, ref.prompts, slots, 4);
      for (const chunk of [1, 3]) {
        const chunked = generate(runner, ref.prompts, slots, 4, chunk);
        ref.prompts.forEach((_, p) => {
          assert.ok(relativeL2(chunked.lastLogits[p], whole.lastLogits[p]) < 1e-6, `chunk ${chunk} prompt ${p}`);
          assert.deepEqual(chunked.tokens[p], whole.tokens[p]);
        });
      }
    });
  });
}
