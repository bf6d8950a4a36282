// Single CPU ops of the native forward against small straightforward JS references on random inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loadNativeTestingOps } from '../../src/binding/index.js';
import { fromBf16Bits, fromF16Bits, rng, toBf16Bits, toF16Bits } from './forward-random-model.js';
import { referenceInvFreq, referenceRope } from './forward-reference.js';

const ops = loadNativeTestingOps();

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('RMSNorm', () => {
  it('matches w * x / sqrt(mean(x²) + eps)', () => {
    for (const n of [1, 7, 64, 1000]) {
      const x = randomArray(n, n, 3);
      const w = randomArray(n, n + 1);
      const eps = 1e-5;
      const ms = x.reduce((a, v) => a + v * v, 0) / n;
      const expected = Array.from(x, (v, i) => (w[i] * v) / Math.sqrt(ms + eps));
      assertClose(ops.rmsNorm(x, w, eps), expected, 1e-5, `rmsNorm n=${n}`);
    }
  });
});

describe('RoPE', () => {
  const cases = [
    { type: 'none' as const, factor: 1 },
    { type: 'linear' as const, factor: 4 },
    { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    { type: 'llama3' as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  ];
  for (const c of cases) {
    it(`inverse frequencies (${c.type}, factor ${c.factor}) match transformers`, () => {
      for (const headDim of [16, 64, 128]) {
        const theta = headDim === 128 ? 500000 : 10000;
        const native = ops.ropeInverseFrequencies({ headDim, theta, ...c });
        const expected = referenceInvFreq({
          headDim,
          ropeTheta: theta,
          ropeScaling: { type: c.type, factor: c.factor, lowFreqFactor: c.lowFreqFactor ?? 1, highFreqFactor: c.highFreqFactor ?? 4, originalMaxPositionEmbeddings: c.originalMaxPositionEmbeddings ?? 8192 },
        });
        assertClose(native, expected, 2e-6, `invFreq ${c.type} D=${headDim}`);
      }
    });
  }
  it('rotates pairs (i, i + D/2) like rotate_half, per head, at several positions', () => {
    const numHeads = 3;
    const headDim = 32;
    const inv = ops.ropeInverseFrequencies({ headDim, theta: 10000, type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
    for (const pos of [0, 1, 17, 1000]) {
      const x = randomArray(numHeads * headDim, pos + 5);
      const expected = Float64Array.from(x);
      referenceRope(expected, numHeads, headDim, pos, Array.from(inv));
      ops.applyRope(x, numHeads, headDim, pos, inv);
      assertClose(x, expected, 5e-5, `rope pos=${pos}`);
    }
  });
});

describe('GEMM with on-the-fly weight conversion', () => {
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    it(`${dtype}: y = x·Wᵀ for odd tile shapes`, () => {
      for (const [M, N, K] of [
        [1, 1, 1],
        [1, 37, 100],
        [3, 13, 17],
        [5, 40, 64],
        [70, 9, 33],
      ]) {
        const x = randomArray(M * K, M * 100 + K);
        const wf = randomArray(N * K, N + 7);
        let w: Float32Array | Uint16Array = wf;
        let wv: ArrayLike<number> = wf;
        if (dtype !== 'f32') {
          const bits = Uint16Array.from(wf, (v) => (dtype === 'bf16' ? toBf16Bits(v) : toF16Bits(v)));
          w = bits;
          wv = Array.from(bits, (b) => (dtype === 'bf16' ? fromBf16Bits(b) : fromF16Bits(b)));
        }
        const expected: number[] = [];
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += x[m * K + k] * wv[n * K + k];
            expected.push(s);
          }
        for (const threads of [1, 2]) {
          assertClose(ops.gemm(x, M, w, dtype, N, K, threads), expected, 1e-4, `gemm ${dtype} M=${M} N=${N} K=${K}`);
        }
      }
    });
  }
  it('rejects mismatched sizes with an error instead of crashing', () => {
    assert.throws(() => ops.gemm(new Float32Array(3), 1, new Float32Array(4), 'f32', 2, 3, 1), /M\*K|N\*K/);
  });
});

const noPenalty = { repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, penaltyTokenIds: new Int32Array(0), penaltyOutputCounts: new Int32Array(0) };
const greedy = { temperature: 0, topP: 1, topK: 0, minP: 0, seedLo: 0, seedHi: 0, targetTokenId: -1, ...noPenalty };

function logSoftmax(l: Float32Array): number[] {
  const mx = Math.max(...l);
  const lse = mx + Math.log(l.reduce((a, v) => a + Math.exp(v - mx), 0));
  return Array.from(l, (v) => v - lse);
}

function support(logits: Float32Array, params: Partial<typeof greedy>, draws = 300): Set<number> {
  const seen = new Set<number>();
  for (let s = 0; s < draws; s++) seen.add(ops.sampleRow(logits, { ...greedy, ...params, seedLo: s * 7919, seedHi: s }, 0).token);
  return seen;
}

describe('sampling', () => {
  const V = 50;
  const logits = randomArray(V, 99, 3);
  const sortedIds = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  const probs = (() => {
    const lp = logSoftmax(logits);
    return lp.map(Math.exp);
  })();

  it('greedy returns the argmax and its raw logprob', () => {
    const r = ops.sampleRow(logits, greedy, 0);
    assert.equal(r.token, sortedIds[0]);
    assert.ok(Math.abs(r.sampledLogprob - logSoftmax(logits)[sortedIds[0]]) < 1e-5);
  });

  it('the same seed gives the same token; different seeds explore', () => {
    const p = { ...greedy, temperature: 1.5, seedLo: 12345, seedHi: 678 };
    const first = ops.sampleRow(logits, p, 0).token;
    for (let i = 0; i < 5; i++) assert.equal(ops.sampleRow(logits, p, 0).token, first);
    assert.ok(support(logits, { temperature: 1.5 }).size > 5);
  });

  it('draw frequencies follow softmax(logits / T)', () => {
    const two = Float32Array.from([Math.log(3), 0]);
    let zeros = 0;
    const n = 4000;
    for (let s = 0; s < n; s++) if (ops.sampleRow(two, { ...greedy, temperature: 1, seedLo: s, seedHi: 0 }, 0).token === 0) zeros++;
    assert.ok(Math.abs(zeros / n - 0.75) < 0.03, `P(token 0) = ${zeros / n}, expected 0.75`);
  });

  it('top-k keeps exactly the k most likely tokens', () => {
    const seen = support(logits, { temperature: 5, topK: 4 });
    assert.deepEqual([...seen].sort(), sortedIds.slice(0, 4).sort());
  });

  it('top-p keeps the smallest prefix whose preceding mass is <= p', () => {
    const topP = 0.5;
    const allowed: number[] = [];
    let before = 0;
    for (const id of sortedIds) {
      if (before > topP) break;
      allowed.push(id);
      before += probs[id];
    }
    const seen = support(logits, { temperature: 1, topP }, 600);
    for (const t of seen) assert.ok(allowed.includes(t), `token ${t} outside the top-p set`);
    assert.ok(seen.size >= Math.min(2, allowed.length));
  });

  it('top-p and top-k over a large vocabulary (beyond the first sorted prefix of 256 ids)', () => {
    const bigV = 5000;
    const flat = randomArray(bigV, 7, 0.5);
    const lp = logSoftmax(flat);
    const order = Array.from(flat.keys()).sort((a, b) => flat[b] - flat[a] || a - b);
    const rank = new Map(order.map((id, r) => [id, r]));
    const topP = 0.9;
    let before = 0;
    let allowedCount = 0;
    for (const id of order) {
      if (before > topP) break;
      allowedCount++;
      before += Math.exp(lp[id]);
    }
    assert.ok(allowedCount > 2048, `the top-p set (${allowedCount}) spans several sorted prefixes`);
    const seenP = support(flat, { temperature: 1, topP }, 400);
    for (const t of seenP) assert.ok(rank.get(t)! < allowedCount, `token of rank ${rank.get(t)} outside the top-p set`);
    assert.ok(Math.max(...[...seenP].map((t) => rank.get(t)!)) > 256);
    const seenK = support(flat, { temperature: 1, topK: 600 }, 400);
    for (const t of seenK) assert.ok(rank.get(t)! < 600, `token of rank ${rank.get(t)} outside the top-k set`);
    assert.ok(Math.max(...[...seenK].map((t) => rank.get(t)!)) > 256);
  });

  it('min-p drops tokens below min_p times the top probability', () => {
    const minP = 0.3;
    const maxProb = probs[sortedIds[0]];
    const allowed = sortedIds.filter((id) => probs[id] >= minP * maxProb);
    const seen = support(logits, { temperature: 1, minP }, 600);
    for (const t of seen) assert.ok(allowed.includes(t), `token ${t} below the min-p threshold`);
  });

  it('penalties: repetition divides positive / multiplies negative logits, frequency and presence subtract', () => {
    const l = Float32Array.from([2.0, 1.9, -1.0, 1.0]);
    const pen = (ids: number[], counts: number[], p: Partial<typeof greedy>) =>
      ops.sampleRow(l, { ...greedy, ...p, penaltyTokenIds: Int32Array.from(ids), penaltyOutputCounts: Int32Array.from(counts) }, 0).token;
    assert.equal(pen([0], [0], {}), 0);
    assert.equal(pen([0], [0], { repetitionPenalty: 1.1 }), 1); // 2.0 / 1.1 < 1.9
    assert.equal(pen([0], [0], { repetitionPenalty: 1.01 }), 0); // 1.98 > 1.9
    assert.equal(pen([0, 1], [0, 0], { repetitionPenalty: 3 }), 3); // 0.67, 0.63 < 1.0
    assert.equal(pen([0], [0], { frequencyPenalty: 5 }), 0); // count 0: prompt only, no frequency penalty
    assert.equal(pen([0], [2], { frequencyPenalty: 0.06 }), 1); // 2.0 - 0.12 < 1.9
    assert.equal(pen([0], [2], { frequencyPenalty: 0.04 }), 0); // 2.0 - 0.08 > 1.9
    assert.equal(pen([0], [1], { presencePenalty: 0.2 }), 1);
    assert.equal(pen([0], [0], { presencePenalty: 5 }), 0); // presence needs an output occurrence
    const negative = Float32Array.from([-1.0, -1.5]);
    const r = ops.sampleRow(negative, { ...greedy, repetitionPenalty: 2, penaltyTokenIds: Int32Array.from([0]), penaltyOutputCounts: Int32Array.from([1]) }, 0);
    assert.equal(r.token, 1); // -1.0 * 2 = -2.0 < -1.5
    assert.ok(Math.abs(r.sampledLogprob - logSoftmax(negative)[1]) < 1e-6, 'logprobs use the raw logits');
  });

  it('returns top-K logprobs in order and the target token logprob', () => {
    const lp = logSoftmax(logits);
    const r = ops.sampleRow(logits, { ...greedy, targetTokenId: 7 }, 5);
    assert.deepEqual(Array.from(r.topIds), sortedIds.slice(0, 5));
    assertClose(r.topLogprobs, sortedIds.slice(0, 5).map((id) => lp[id]), 1e-5, 'top logprobs');
    assert.ok(Math.abs(r.targetLogprob - lp[7]) < 1e-5);
    assert.ok(Number.isNaN(ops.sampleRow(logits, greedy, 0).targetLogprob));
  });

  it('uniform draws from the seed are spread over [0, 1)', () => {
    const us = Array.from({ length: 2000 }, (_, i) => ops.uniformFromSeed(i, 0));
    assert.ok(us.every((u) => u >= 0 && u < 1));
    const mean = us.reduce((a, b) => a + b, 0) / us.length;
    assert.ok(Math.abs(mean - 0.5) < 0.03);
  });
});
