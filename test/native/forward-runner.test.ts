// ModelRunner's flattening of scheduler steps: penalties (CSR over prompt and output tokens), per-step seeds,
// top logprobs and prompt logprobs across chunks, checked against the raw logits of the same model.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { stepSeed } from '../../src/engine/model/runner-sampling.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import { writeRandomModel, greedy as greedyWithoutLogprob } from './forward-random-model.js';

const root = mkdtempSync(join(tmpdir(), 'tslora-runner-'));
after(() => rmSync(root, { recursive: true, force: true }));
const model = writeRandomModel({ dir: root, hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', seed: 21 });
const runner = new ModelRunner(model, {
  backend: loadNativeBackend('cpu'), kvNumBlocks: 32, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0,
  loraTargetModules: [], loraBackend: 'triton', maxLoraChunkSize: 16, numThreads: 2,
});
after(() => runner.destroy());

const greedy: StepSampling = { ...greedyWithoutLogprob, wantLogprob: true };
const prompt = [5, 6, 7, 8, 9, 10, 11];
const seq = (sampling: StepSampling, extra: Partial<StepSequence> = {}): StepSequence => ({
  tokenIds: prompt, startPosition: 0, blockTable: [0, 1], slot: -1, sampling, returnLogits: true, ...extra,
});
const argmax = (x: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
};

describe('ModelRunner step flattening', () => {
  it('penalties apply to prompt and output tokens as the CSR says', () => {
    const [raw] = runner.step([seq(greedy)]);
    const logits = Array.from(raw.logits!);
    const top = argmax(logits);
    assert.equal(raw.tokenId, top);
    // Output token `top` seen 3 times: frequency 0.5 * 3 and presence 1 subtract from its logit.
    const penalised = logits.slice();
    penalised[top] -= 0.5 * 3 + 1;
    const [r] = runner.step([seq({ ...greedy, frequencyPenalty: 0.5, presencePenalty: 1, outputTokenIds: [top, 3, top, top] })]);
    const expected = penalised.slice();
    expected[3] -= 0.5 + 1;
    assert.equal(r.tokenId, argmax(expected));
    // Repetition penalty covers prompt tokens too (count 0 in the output).
    const rep = logits.slice();
    for (const t of new Set([...prompt, top])) rep[t] = rep[t] > 0 ? rep[t] / 50 : rep[t] * 50;
    const [r2] = runner.step([seq({ ...greedy, repetitionPenalty: 50, promptTokenIds: prompt, outputTokenIds: [top] })]);
    assert.equal(r2.tokenId, argmax(rep));
    assert.notEqual(r2.tokenId, top);
    // Logprobs stay those of the raw logits.
    const mx = Math.max(...logits);
    const lse = mx + Math.log(logits.reduce((a, v) => a + Math.exp(v - mx), 0));
    assert.ok(Math.abs(r2.logprob - (logits[r2.tokenId] - lse)) < 1e-4);
  });

  it('seeds depend on (seed, generatedCount) only', () => {
    assert.deepEqual(stepSeed(7, 3), stepSeed(7, 3));
    assert.notDeepEqual(stepSeed(7, 3), stepSeed(7, 4));
    assert.notDeepEqual(stepSeed(7, 3), stepSeed(8, 3));
    assert.notDeepEqual(stepSeed(2 ** 40 + 7, 3), stepSeed(7, 3));
    const hot = { ...greedy, temperature: 5 };
    const draws = (seed: number, count: number) => runner.step([seq({ ...hot, seed, generatedCount: count })])[0].tokenId;
    assert.equal(draws(1, 0), draws(1, 0));
    const spread = new Set(Array.from({ length: 24 }, (_, i) => draws(1, i)));
    assert.ok(spread.size > 3, `a new draw every step (${spread.size} distinct tokens in 24 steps)`);
  });

  it('top logprobs per request and prompt logprobs over chunked prefill', () => {
    const [whole] = runner.step([seq({ ...greedy, topLogprobsNum: 4 }, { promptLogprobs: true })]);
    assert.equal(whole.topLogprobs!.length, 4);
    assert.ok(whole.topLogprobs!.every(([, lp], i, a) => i === 0 || lp <= a[i - 1][1]));
    assert.equal(whole.promptLogprobs!.length, prompt.length - 1);
    // The same prompt in two chunks: the first chunk scores the next chunk's first token through nextPromptTokenId.
    const [c1] = runner.step([seq(greedy, { tokenIds: prompt.slice(0, 3), sampling: null, promptLogprobs: true, nextPromptTokenId: prompt[3] })]);
    assert.equal(c1.tokenId, -1);
    const [c2] = runner.step([seq(greedy, { tokenIds: prompt.slice(3), startPosition: 3, promptLogprobs: true })]);
    const chunked = [...c1.promptLogprobs!, ...c2.promptLogprobs!];
    assert.equal(chunked.length, prompt.length - 1);
    chunked.forEach((lp, i) => assert.ok(Math.abs(lp - whole.promptLogprobs![i]) < 1e-5, `prompt logprob ${i}`));
    assert.equal(c2.tokenId, whole.tokenId);
  });

  it('several sequences of one step keep their own sampling rows', () => {
    const a = runner.step([seq(greedy)])[0];
    const b = runner.step([seq(greedy, { tokenIds: [1, 2, 3], blockTable: [2] })])[0];
    const both = runner.step([seq(greedy), seq(greedy, { tokenIds: [1, 2, 3], blockTable: [2] })]);
    assert.equal(both[0].tokenId, a.tokenId);
    assert.equal(both[1].tokenId, b.tokenId);
    assert.deepEqual(Array.from(both[1].logits!), Array.from(b.logits!));
  });
});
