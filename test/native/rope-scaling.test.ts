// Scaled RoPE against PyTorch + transformers: two tiny random Llama models with 'linear' (factor 4) and 'llama3'
// (factor 8, original context 32) RoPE, prompts of 40, 150 and 300 tokens, so positions run far past the original
// context (scripts/make-fixtures-rope.py wrote the fp32 references). The CPU backend's last-position logits must match
// within relative L2 2e-5 (fp32 against fp32; measured ≤ 5.3e-6), and 8 greedy tokens must be the reference's (every reference margin is
// ≥ 2e-2, far above fp32 noise).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { relativeL2 } from './forward-reference.js';
import { greedy } from './forward-random-model.js';

interface RopeReference {
  greedyTokens: number;
  models: Array<{ name: string; modelPath: string; ropeScaling: Record<string, unknown>; prompts: number[][]; lastLogits: number[][]; greedy: number[][]; minGreedyMargin: number }>;
}

const FIXTURES = 'test/fixtures';
const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'rope-scaling.json'), 'utf8')) as RopeReference;
const backend = loadNativeBackend('cpu');
const BLOCK = 16;
const BLOCKS_PER_SEQ = 20; // 320 positions: the longest prompt (300) plus the greedy tokens

for (const model of ref.models) {
  describe(`RoPE ${JSON.stringify(model.ropeScaling)} matches PyTorch (${model.name})`, () => {
    let runner: ModelRunner;
    after(() => runner?.destroy());

    it('last-position logits (relative L2 ≤ 2e-5) and 8 greedy tokens for prompts of 40, 150 and 300 tokens', async () => {
      assert.ok(model.minGreedyMargin > 1e-2, `reference margins ${model.minGreedyMargin}`);
      const loaded = await loadModel(join(FIXTURES, model.modelPath));
      runner = new ModelRunner(loaded, {
        backend, kvNumBlocks: BLOCKS_PER_SEQ, kvBlockSize: BLOCK, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [],
        loraBackend: 'triton', maxLoraChunkSize: 16, numThreads: 2,
      });
      const table = Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => i);
      model.prompts.forEach((prompt, p) => {
        const first = runner.step([{ tokenIds: prompt, startPosition: 0, blockTable: table, slot: -1, sampling: greedy, returnLogits: true }])[0];
        const err = relativeL2(first.logits as Float32Array, model.lastLogits[p]);
        console.log(`rope-scaling ${model.name} prompt of ${prompt.length}: relative L2 ${err.toExponential(2)}`);
        assert.ok(err <= 2e-5, `${model.name} prompt ${p} (${prompt.length} tokens): relative L2 ${err}`);
        const tokens = [first.tokenId];
        for (let t = 1; t < ref.greedyTokens; t++) {
          tokens.push(runner.step([{ tokenIds: [tokens[t - 1]], startPosition: prompt.length + t - 1, blockTable: table, slot: -1, sampling: greedy }])[0].tokenId);
        }
        assert.deepEqual(tokens, model.greedy[p], `${model.name} prompt ${p}: greedy tokens`);
      });
    });
  });
}
