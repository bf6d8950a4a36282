// The CPU sampler's seeded draws follow the exact law: softmax(l / T) truncated by top-k / top-p / min-p (alone and
// combined) and renormalised, at three temperatures (test/native/sampling-law.ts: exact binomial bounds plus Pearson's
// chi-square, false-failure probability ≤ 1e-6 per case). Seeds go through the runner's stepSeed, as when serving.
// The fit itself is checked first: draws from the right law pass, draws from a law with a slightly wrong temperature
// or without the renormalisation fail.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loadNativeTestingOps } from '../../src/binding/index.js';
import { stepSeed } from '../../src/engine/model/runner-sampling.js';
import { rng as seededUniform } from './forward-random-model.js';
import { exactLaw, fitToLaw, gammaQ, lawCases, safeTopP, softmaxOverT, type SamplingRule } from './sampling-law.js';

const ops = loadNativeTestingOps();
const DRAWS = 20_000;
const ALPHA = 1e-6;

// 48 Zipf-like logits (-1.1 · ln rank, jittered) in a seeded shuffled id order: at T = 0.6 the top token has about
// half the mass, at T = 1.8 the tail is wide; ranks differ from ids so the samplers' sorting is exercised.
const rand = seededUniform(7);
const ranks = [...Array(48).keys()].map((r) => [rand(), r]).sort((a, b) => a[0] - b[0]).map(([, r]) => r);
const LOGITS = Float32Array.from(ranks, (r) => 3 - 1.1 * Math.log(r + 1) + 0.05 * rand());

function drawCounts(rule: SamplingRule, firstSeed: number): Int32Array {
  const counts = new Int32Array(LOGITS.length);
  for (let s = 0; s < DRAWS; s++) {
    const [seedLo, seedHi] = stepSeed(firstSeed + s, 0);
    const { token } = ops.sampleRow(LOGITS, {
      temperature: rule.temperature, topP: rule.topP, topK: rule.topK, minP: rule.minP, seedLo, seedHi, repetitionPenalty: 1,
      frequencyPenalty: 0, presencePenalty: 0, penaltyTokenIds: new Int32Array(0), penaltyOutputCounts: new Int32Array(0), targetTokenId: -1,
    }, 0);
    counts[token]++;
  }
  return counts;
}

/** Draws from `law` with a seeded JS uniform (for checking the fit itself). */
function simulate(law: Float64Array, seed: number): Int32Array {
  const u = seededUniform(seed);
  const counts = new Int32Array(law.length);
  for (let s = 0; s < DRAWS; s++) {
    let target = u();
    let id = 0;
    while (id < law.length - 1 && (target -= law[id]) >= 0) id++;
    counts[id]++;
  }
  return counts;
}

describe('the goodness-of-fit test itself', () => {
  it('gives textbook chi-square tail probabilities', () => {
    assert.ok(Math.abs(gammaQ(10 / 2, 18.307 / 2) - 0.05) < 1e-4); // χ²(10) 95th percentile
    assert.ok(Math.abs(gammaQ(3 / 2, 11.345 / 2) - 0.01) < 1e-4); // χ²(3) 99th percentile
    assert.ok(Math.abs(gammaQ(40 / 2, 73.402 / 2) - 1e-3) < 1e-6); // χ²(40) 99.9th percentile
    assert.ok(Math.abs(gammaQ(1 / 2, 23.928 / 2) - 1e-6) < 1e-9); // χ²(1) at the 1e-6 tail this test uses
  });

  it('accepts draws from the law and rejects draws from a law with T × 1.1 or without renormalisation', () => {
    const rule = { temperature: 1, topK: 0, topP: safeTopP(LOGITS, 1, 0.75), minP: 0 };
    const law = exactLaw(LOGITS, rule);
    const right = fitToLaw(simulate(law, 11), law, ALPHA);
    assert.ok(right.ok, right.describe());
    const hotter = fitToLaw(simulate(exactLaw(LOGITS, { ...rule, temperature: 1.1 }), 12), law, ALPHA);
    assert.ok(!hotter.ok, `T × 1.1 passed: ${hotter.describe()}`);
    // Not renormalised: the filtered mass falls on the last kept token (a sampler that runs off its kept list).
    const p = softmaxOverT(LOGITS, 1);
    const unnormalised = Float64Array.from(law, (x, i) => (x > 0 ? p[i] : 0));
    const last = [...unnormalised.keys()].filter((i) => unnormalised[i] > 0).sort((a, b) => unnormalised[a] - unnormalised[b])[0];
    unnormalised[last] += 1 - unnormalised.reduce((s, x) => s + x, 0);
    const leaky = fitToLaw(simulate(unnormalised, 13), law, ALPHA);
    assert.ok(!leaky.ok, `no renormalisation passed: ${leaky.describe()}`);
  });
});

describe('CPU sampler: seeded draws follow the exact truncated, renormalised softmax(l / T)', () => {
  for (const temperature of [0.6, 1, 1.8]) {
    for (const [name, rule] of lawCases(LOGITS, temperature)) {
      it(`T = ${temperature}, ${name}`, () => {
        const law = exactLaw(LOGITS, rule);
        const fit = fitToLaw(drawCounts(rule, 1 + Math.round(temperature * 1e6)), law, ALPHA);
        console.log(`sampling-law cpu T=${temperature} ${name}: ${fit.describe()}`);
        assert.ok(fit.ok, fit.describe());
        assert.ok(fit.degreesOfFreedom >= 1, `an uninformative case (one bin): ${fit.describe()}`);
      });
    }
  }
});
