// logit_bias in the CPU sampler: the bias is added to the penalised logits before the draw (OpenAI / SGLang), so
// greedy takes the argmax of logits + bias and a seeded draw follows softmax((logits + bias) / T) under top-k,
// exactly as a float64 reference of the same rule with the same uniform (uniformFromSeed) picks; +100 forces a
// token, -100 bans it, suppression (-inf) still wins, logprobs stay those of the raw logits. The runner's per-row
// CSR reaches the native step (rows without a bias are untouched); malformed CSRs are rejected.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling } from '../../src/engine/model/runner-types.js';
import { rng, writeRandomModel } from './forward-random-model.js';

const testing = loadNativeTestingOps();
type RowParams = Parameters<typeof testing.sampleRow>[1];
const rowParams = (extra: Partial<RowParams> = {}): RowParams => ({
  temperature: 0, topP: 1, topK: 0, minP: 0, seedLo: 1, seedHi: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, penaltyTokenIds: new Int32Array(0), penaltyOutputCounts: new Int32Array(0), targetTokenId: -1, ...extra,
});
const biasOf = (entries: Array<[number, number]>) => ({
  biasTokenIds: Int32Array.from(entries.map(([id]) => id)),
  biasValues: Float32Array.from(entries.map(([, v]) => v)),
});
const argmax = (x: ArrayLike<number>) => Array.from(x).reduce((best, v, i, a) => (v > a[best] ? i : best), 0);

/** The draw rule of native/src/cpu/sampling.cpp (top-k path) in float64: probabilities sorted by (p desc, id asc). */
function referenceTopKDraw(logits: Float32Array, bias: Map<number, number>, T: number, topK: number, u: number): number {
  const l = Array.from(logits, (v, i) => (Math.fround(v + (bias.get(i) ?? 0))) / T);
  const mx = Math.max(...l);
  const e = l.map((v) => Math.exp(v - mx));
  const sum = e.reduce((a, b) => a + b, 0);
  const p = e.map((v) => v / sum);
  const order = [...p.keys()].sort((a, b) => p[b] - p[a] || a - b).slice(0, topK);
  const kept = order.reduce((a, i) => a + p[i], 0);
  let cum = 0;
  for (const i of order) {
    cum += p[i];
    if (cum > u * kept) return i;
  }
  return order[order.length - 1];
}

describe('CPU sampler: logit_bias', () => {
  const r = rng(3);
  const logits = Float32Array.from({ length: 40 }, () => r() * 6 - 3);
  const natural = argmax(logits);
  const other = (natural + 11) % 40;

  it('greedy: +100 forces a token, -100 bans the argmax, logprobs stay raw', () => {
    const forced = testing.sampleRow(logits, rowParams({ ...biasOf([[other, 100]]), targetTokenId: other }), 0);
    assert.equal(forced.token, other);
    assert.ok(Math.abs(forced.sampledLogprob - forced.targetLogprob) < 1e-7, 'sampled logprob = raw logprob of the token');
    const plain = testing.sampleRow(logits, rowParams({ targetTokenId: other }), 0);
    assert.equal(plain.token, natural);
    assert.ok(Math.abs(plain.targetLogprob - forced.targetLogprob) < 1e-7, 'the bias does not change logprobs');
    const banned = testing.sampleRow(logits, rowParams(biasOf([[natural, -100]])), 0);
    const expected = argmax(logits.map((v, i) => (i === natural ? v - 100 : v)));
    assert.equal(banned.token, expected);
    assert.notEqual(banned.token, natural);
  });

  it('greedy takes the argmax of logits + bias for small biases too', () => {
    for (let trial = 0; trial < 50; trial++) {
      const entries: Array<[number, number]> = [[trial % 40, (r() - 0.5) * 4], [(trial * 7 + 3) % 40, (r() - 0.5) * 4]];
      if (entries[0][0] === entries[1][0]) entries.pop();
      const biased = Float32Array.from(logits);
      for (const [id, v] of entries) biased[id] = Math.fround(biased[id] + v);
      assert.equal(testing.sampleRow(logits, rowParams(biasOf(entries)), 0).token, argmax(biased), `trial ${trial}`);
    }
  });

  it('seeded top-k draws equal the float64 reference of softmax((logits + bias) / T)', () => {
    const entries: Array<[number, number]> = [[other, 2.5], [natural, -1], [(other + 1) % 40, 1.25]];
    const bias = new Map(entries);
    for (let seed = 0; seed < 300; seed++) {
      const params = rowParams({ ...biasOf(entries), temperature: 0.8, topK: 5, seedLo: seed * 2654435761 >>> 0, seedHi: seed });
      const u = testing.uniformFromSeed(params.seedLo, params.seedHi);
      assert.equal(testing.sampleRow(logits, params, 0).token, referenceTopKDraw(logits, bias, 0.8, 5, u), `seed ${seed}`);
    }
  });

  it('suppression wins over a +100 bias, and penalties apply before the bias', () => {
    const r1 = testing.sampleRow(logits, rowParams({ ...biasOf([[other, 100]]), suppressTokenIds: Int32Array.from([other]) }), 0);
    assert.notEqual(r1.token, other);
    // frequency penalty 2 x count 3 = -6 on `other`; a bias of +6 brings it back exactly to its raw logit.
    const penalised = rowParams({ frequencyPenalty: 2, penaltyTokenIds: Int32Array.from([other]), penaltyOutputCounts: Int32Array.from([3]) });
    const both = testing.sampleRow(logits, { ...penalised, ...biasOf([[other, 6], [natural, -100]]) }, 0);
    const expected = argmax(logits.map((v, i) => (i === natural ? v - 100 : v)));
    assert.equal(both.token, expected);
  });
});

describe('runner: logit_bias rows reach the native step', () => {
  const backend = loadNativeBackend('cpu');
  const root = mkdtempSync(join(tmpdir(), 'tslora-bias-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const model = writeRandomModel({ dir: root, hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'f32', seed: 9 });
  const runner = new ModelRunner(model, { backend, kvNumBlocks: 32, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [], loraBackend: 'triton', maxLoraChunkSize: 16, numThreads: 1 });
  after(() => runner.destroy());
  const greedy: StepSampling = {
    temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
    presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: true,
  };
  const prompt = [5, 6, 7, 8, 9];

  it('a biased row draws the forced token; an unbiased row in the same batch is unchanged', () => {
    const [plain] = runner.step([{ tokenIds: prompt, startPosition: 0, blockTable: [0, 1], slot: -1, sampling: greedy, returnLogits: true }]);
    const forcedId = (plain.tokenId + 17) % 101;
    const out = runner.step([
      { tokenIds: prompt, startPosition: 0, blockTable: [2, 3], slot: -1, sampling: { ...greedy, logitBias: [[forcedId, 100]] } },
      { tokenIds: prompt, startPosition: 0, blockTable: [4, 5], slot: -1, sampling: greedy },
    ]);
    assert.equal(out[0].tokenId, forcedId);
    assert.equal(out[1].tokenId, plain.tokenId);
    // Logprob of the forced token = its raw logprob (the bias only steers the draw).
    const l = plain.logits!;
    const mx = Math.max(...l);
    const lse = mx + Math.log(Array.from(l).reduce((s, v) => s + Math.exp(v - mx), 0));
    assert.ok(Math.abs(out[0].logprob! - (l[forcedId] - lse)) < 1e-4, `${out[0].logprob} vs ${l[forcedId] - lse}`);
  });

  it('rejects a bias id outside the vocabulary and a non-finite value', () => {
    const step = (bias: Array<[number, number]>) => runner.step([{ tokenIds: prompt, startPosition: 0, blockTable: [6, 7], slot: -1, sampling: { ...greedy, logitBias: bias } }]);
    assert.throws(() => step([[101, 1]]), /outside the vocabulary/);
    assert.throws(() => step([[3, Number.NaN]]), /not finite/);
  });
});
