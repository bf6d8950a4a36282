// The GPU sampler's seeded draws follow the exact law: softmax(l / T) truncated by top-k / top-p / min-p (alone and
// combined) and renormalised, at three temperatures, judged by the same fit as the CPU sampler
// (test/native/sampling-law.ts: exact binomial bounds plus Pearson's chi-square, false-failure probability ≤ 1e-6 per
// case, at least one degree of freedom). The law is computed from the logits the GPU returned for the very rows it sampled (the expected counts sum
// each row's law), so the check is independent of how close the GPU logits are to the CPU's.
// Skipped, with the reason, without the CUDA addon or a GPU (and then counted by scripts/run-tests.mjs, which fails
// a GPU-required run that skips). TSLORA_SAMPLING_LAW_BACKEND=cpu runs the same plumbing on the CPU backend.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend, type NativeBackend } from '../../src/binding/index.js';
import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling } from '../../src/engine/model/runner-types.js';
import { exactLaw, fitToLaw, lawCases, type SamplingRule } from '../native/sampling-law.js';
import { BLOCKS_PER_SEQ, cudaBackendOrSkip, greedy, loadFixture, makeRunner, readReference } from './cuda-parity-helpers.js';

const onCpu = process.env.TSLORA_SAMPLING_LAW_BACKEND === 'cpu';
let backend: NativeBackend | null;
let skip: string | false;
if (onCpu) ({ backend, skip } = { backend: loadNativeBackend('cpu'), skip: false });
else ({ backend, skip } = cudaBackendOrSkip());
const MODEL = 'tiny-qwen3';
const ROWS = 128;
const STEPS = 160; // 20,480 draws per case
const ALPHA = 1e-6;

describe(`${onCpu ? 'CPU backend (plumbing check)' : 'CUDA'} sampler: seeded draws follow the exact truncated, renormalised softmax(l / T)`, { skip }, () => {
  const ref = readReference(MODEL);
  const prompt = ref.prompts[0];
  let runner: ModelRunner;
  let logits0: Float32Array;

  // ROWS copies of the prompt in one prefill step, row b with sampling(b); the raw logits of every row.
  const step = (sampling: (b: number) => StepSampling) =>
    runner.step(Array.from({ length: ROWS }, (_, b) => ({
      tokenIds: prompt, startPosition: 0, blockTable: Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => b * BLOCKS_PER_SEQ + i),
      slot: -1, sampling: sampling(b), returnLogits: true,
    })));

  before(async () => {
    const fx = await loadFixture(MODEL, ref);
    fx.adapters = [];
    runner = await makeRunner(fx, backend!, 'csgmv', onCpu ? undefined : 'f16', ROWS * BLOCKS_PER_SEQ);
    logits0 = step(() => greedy)[0].logits as Float32Array;
  });
  after(() => runner?.destroy());

  // The fixture's logits are sharp (top token 0.98 at T = 1): these temperatures put the top token between 0.37 and
  // 0.08 so that every filter keeps several tokens and the fit has degrees of freedom.
  for (const temperature of [3, 4, 6]) {
    it(`T = ${temperature}: no filter, top-k, top-p, min-p, and their combinations`, () => {
      const failures: string[] = [];
      for (const [name, rule] of lawCases(logits0, temperature) as Array<[string, SamplingRule]>) {
        const counts = new Int32Array(logits0.length);
        const expected = new Float64Array(logits0.length);
        for (let s = 0; s < STEPS; s++) {
          const rows = step((b) => ({ ...greedy, ...rule, seed: 1 + Math.round(temperature * 1e6) + s * ROWS + b, generatedCount: 0 }));
          let previous: { logits: Float32Array; law: Float64Array } | null = null;
          for (const r of rows) {
            counts[r.tokenId]++;
            const logits = r.logits as Float32Array;
            // rows of one step usually carry identical logits: compute the law once for them
            if (!previous || !previous.logits.every((v, i) => v === logits[i])) previous = { logits, law: exactLaw(logits, rule) };
            previous.law.forEach((p, id) => (expected[id] += p));
          }
        }
        const draws = STEPS * ROWS;
        const fit = fitToLaw(counts, expected.map((x) => x / draws), ALPHA);
        console.log(`cuda-sampling-law ${onCpu ? 'cpu' : 'gpu'} T=${temperature} ${name}: ${fit.describe()}`);
        if (!fit.ok || fit.degreesOfFreedom < 1) failures.push(`${name}: ${fit.describe()}`);
      }
      assert.deepEqual(failures, []);
    });
  }
});
