// The whole native forward on tiny random models against the float64 JS reference (test/native/forward-reference.ts),
// plus the KV-cache invariants: prefill vs decode, paged vs contiguous, chunked prefill, batching, block copies.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner, type ModelRunnerOptions } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import { writeRandomModel, type RandomModelOptions } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const backend = loadNativeBackend('cpu');
const root = mkdtempSync(join(tmpdir(), 'tslora-forward-'));
after(() => rmSync(root, { recursive: true, force: true }));

const base: Omit<RandomModelOptions, 'dir' | 'dtype'> = {
  hidden: 64,
  intermediate: 96,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  vocab: 101,
  keepValues: true,
  seed: 11,
};

export const greedy: StepSampling = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  seed: 0,
  generatedCount: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  promptTokenIds: [],
  outputTokenIds: [],
  topLogprobsNum: 0,
  wantLogprob: true,
};

function runnerFor(model: ReturnType<typeof writeRandomModel>, extra: Partial<ModelRunnerOptions> = {}): ModelRunner {
  return new ModelRunner(model, {
    backend,
    kvNumBlocks: 32,
    kvBlockSize: 4,
    loraSlots: 0,
    loraMaxRank: 0,
    loraTargetModules: [],
    loraBackend: 'csgmv',
    maxLoraChunkSize: 16,
    numThreads: 2,
    ...extra,
  });
}

function seq(tokens: number[], start: number, blocks: number[], extra: Partial<StepSequence> = {}): StepSequence {
  return { tokenIds: tokens.slice(start), startPosition: start, blockTable: blocks, slot: -1, sampling: greedy, returnLogits: true, ...extra };
}

const prompt = [3, 17, 42, 5, 99, 0, 64, 23, 7, 81, 12, 50, 33];

describe('native forward vs the JS reference', () => {
  const variants: Array<[string, Partial<RandomModelOptions>, number]> = [
    ['llama f32', { dtype: 'f32' }, 1e-5],
    ['llama bf16 weights', { dtype: 'bf16' }, 1e-5],
    ['llama f16 weights, linear RoPE scaling', { dtype: 'f16', ropeScaling: { type: 'linear', factor: 2, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } }, 1e-5],
    ['qwen2: qkv bias, tied embeddings', { dtype: 'f32', qkvBias: true, tieWordEmbeddings: true }, 1e-5],
    ['qwen3: q/k norm, explicit head dim, llama3 RoPE', { dtype: 'bf16', qkNorm: true, headDim: 32, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } }, 1e-5],
  ];
  for (const [name, opts, tol] of variants) {
    it(`${name}: last-position logits of several prompt lengths`, () => {
      const model = writeRandomModel({ ...base, dir: join(root, name.replace(/\W+/g, '-')), dtype: 'f32', ...opts });
      const runner = runnerFor(model);
      try {
        const ref = referenceForward(model.spec, model.values, prompt);
        for (const len of [1, 4, 5, prompt.length]) {
          const [r] = runner.step([seq(prompt.slice(0, len), 0, [0, 1, 2, 3])]);
          const err = relativeL2(r.logits!, ref[len - 1]);
          assert.ok(err < tol, `${name} len ${len}: relative L2 ${err}`);
          let best = 0;
          for (let i = 1; i < ref[len - 1].length; i++) if (ref[len - 1][i] > ref[len - 1][best]) best = i;
          assert.equal(r.tokenId, best, 'greedy token = reference argmax');
        }
      } finally {
        runner.destroy();
      }
    });
  }
});

describe('KV cache invariants', () => {
  const model = writeRandomModel({ ...base, dir: join(root, 'kv'), dtype: 'bf16' });

  it('prefill then one-token decodes equal a single long prefill (and the reference)', () => {
    const runner = runnerFor(model);
    const ref = referenceForward(model.spec, model.values, prompt);
    const blocks = [5, 9, 2, 30];
    runner.step([seq(prompt.slice(0, 6), 0, blocks)]);
    for (let p = 6; p < prompt.length; p++) {
      const [r] = runner.step([{ ...seq(prompt, p, blocks), tokenIds: [prompt[p]] }]);
      assert.ok(relativeL2(r.logits!, ref[p]) < 1e-5, `decode at position ${p}`);
    }
    runner.destroy();
  });

  it('paged (scattered blocks) and contiguous block tables give identical logits', () => {
    const a = runnerFor(model);
    const b = runnerFor(model);
    const [ra] = a.step([seq(prompt, 0, [0, 1, 2, 3])]);
    const [rb] = b.step([seq(prompt, 0, [31, 7, 19, 4])]);
    assert.deepEqual(Array.from(ra.logits!), Array.from(rb.logits!));
    a.destroy();
    b.destroy();
  });

  it('a prefill split over steps (chunked) equals the unchunked prefill', () => {
    const whole = runnerFor(model);
    const chunked = runnerFor(model);
    const blocks = [3, 8, 1, 12];
    const [w] = whole.step([seq(prompt, 0, blocks)]);
    const chunks = [0, 3, 8, prompt.length];
    let last;
    for (let c = 0; c + 1 < chunks.length; c++) {
      const final = c + 2 === chunks.length;
      [last] = chunked.step([{ ...seq(prompt, chunks[c], blocks), tokenIds: prompt.slice(chunks[c], chunks[c + 1]), sampling: final ? greedy : null }]);
      if (!final) assert.equal(last.tokenId, -1);
    }
    assert.ok(relativeL2(last!.logits!, w.logits!) < 1e-6);
    assert.equal(last!.tokenId, w.tokenId);
    whole.destroy();
    chunked.destroy();
  });

  it('a batch of a prefill and a decode gives each row what it gets alone', () => {
    const alone = runnerFor(model);
    const batched = runnerFor(model);
    const other = [9, 8, 7, 6, 5];
    const [a1] = alone.step([seq(prompt, 0, [0, 1, 2, 3])]);
    alone.step([seq(other.slice(0, 4), 0, [10, 11])]);
    const [a2] = alone.step([{ ...seq(other, 4, [10, 11]) }]);
    batched.step([seq(other.slice(0, 4), 0, [10, 11])]);
    const [b1, b2] = batched.step([seq(prompt, 0, [0, 1, 2, 3]), seq(other, 4, [10, 11])]);
    assert.ok(relativeL2(b1.logits!, a1.logits!) < 1e-6);
    assert.ok(relativeL2(b2.logits!, a2.logits!) < 1e-6);
    alone.destroy();
    batched.destroy();
  });

  it('copyKvBlocks duplicates a cached prefix for another block table', () => {
    const runner = runnerFor(model);
    runner.step([seq(prompt.slice(0, 8), 0, [4, 6])]);
    runner.copyKvBlocks([4, 6], [20, 21]);
    const [x] = runner.step([seq(prompt.slice(0, 9), 8, [4, 6, 7])]);
    const [y] = runner.step([seq(prompt.slice(0, 9), 8, [20, 21, 22])]);
    assert.deepEqual(Array.from(x.logits!), Array.from(y.logits!));
    runner.destroy();
  });

  it('prompt logprobs score each next prompt token; seeded sampling repeats', () => {
    const runner = runnerFor(model);
    const ref = referenceForward(model.spec, model.values, prompt);
    const [r] = runner.step([seq(prompt, 0, [0, 1, 2, 3], { promptLogprobs: true, sampling: { ...greedy, topLogprobsNum: 3 } })]);
    assert.equal(r.promptLogprobs!.length, prompt.length - 1);
    for (let i = 0; i + 1 < prompt.length; i++) {
      const row = ref[i];
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
      assert.ok(Math.abs(r.promptLogprobs![i] - (row[prompt[i + 1]] - lse)) < 1e-4, `prompt logprob ${i}`);
    }
    assert.equal(r.topLogprobs!.length, 3);
    assert.equal(r.topLogprobs![0][0], r.tokenId);
    const sampling = { ...greedy, temperature: 1.3, seed: 42, generatedCount: 3 };
    const draws = [0, 1, 2].map(() => runner.step([seq(prompt, 0, [0, 1, 2, 3], { sampling })])[0].tokenId);
    assert.equal(new Set(draws).size, 1);
    runner.destroy();
  });

  it('memoryReport counts the mapped weights and the KV cache', () => {
    const runner = runnerFor(model);
    const m = runner.memoryReport();
    assert.ok(m.weightBytes > 0 && m.weightBytes <= model.sizeBytes);
    const kvBytes = 2 * model.spec.numLayers * 32 * 4 * model.spec.numKvHeads * model.spec.headDim * 4;
    assert.equal(m.kvCacheBytes, kvBytes);
    assert.equal(m.loraPoolBytes, 0);
    runner.destroy();
    assert.throws(() => runner.memoryReport(), /after destroy/);
  });
});

describe('argument validation throws instead of crashing', () => {
  const model = writeRandomModel({ ...base, dir: join(root, 'validation'), dtype: 'f32', keepValues: false });
  const runner = runnerFor(model);
  after(() => runner.destroy());
  const good = () => runner.buildStepInput([seq(prompt.slice(0, 5), 0, [0, 1])]).step;
  const forward = (patch: Record<string, unknown>) => backend.forward((runner as unknown as { model: never }).model, { ...good(), ...patch });

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['token outside the vocabulary', { tokenIds: Int32Array.from([1, 2, 3, 4, 500]) }, /vocabulary/],
    ['positions of the wrong length', { positions: new Int32Array(3) }, /positions/],
    ['block id out of range', { blockTables: Int32Array.from([0, 99]) }, /block table/],
    ['negative block id', { blockTables: Int32Array.from([-1, 0]) }, /block table/],
    ['context longer than the block table', { seqContextLen: Int32Array.from([9]) }, /seqContextLen/],
    ['logit row outside the step', { logitRows: Int32Array.from([5]) }, /logitRows/],
    ['a LoRA slot with LoRA disabled', { loraSegIndptr: Int32Array.from([0, 5]), loraWeightIndices: Int32Array.from([0]) }, /slot/],
    ['a Float32Array where Int32Array is required', { tokenIds: new Float32Array(5) }, /Int32Array/],
    ['top_p of 0', { topP: Float32Array.from([0]) }, /topP/],
    ['an unknown LoRA backend', { loraBackend: 'punica' }, /loraBackend/],
  ];
  for (const [name, patch, message] of cases) {
    it(name, () => {
      assert.throws(() => forward(patch), (e: Error & { code?: string }) => message.test(e.message) && e.code === 'native');
    });
  }
  it('bad model options and handles', () => {
    assert.throws(() => backend.createModel({} as never), /options\.spec|must be an object/);
    assert.throws(() => backend.forward({} as never, good()), /model handle/);
    const truncated = { ...model.weights, embedTokens: { ...model.weights.embedTokens, offsetBytes: model.sizeBytes } };
    assert.throws(
      () => runnerFor({ spec: model.spec, weights: truncated } as never),
      (e: Error & { code?: string }) => e.code === 'corrupt_file' && /beyond the end/.test(e.message),
    );
    assert.throws(() => runnerFor({ spec: { ...model.spec, hiddenSize: 32 }, weights: model.weights } as never), /shape/);
    assert.throws(() => runner.copyKvBlocks([0], [32]), /block ids/);
    // the runner still works after every failure
    assert.equal(runner.step([seq(prompt.slice(0, 5), 0, [0, 1])]).length, 1);
  });
});
