// buildLoraSegments (spec e.4, e.5): exact tables for small batches and invariants over random batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildLoraSegments, csgmvChunkSize, type LoraChunkCap } from '../../src/engine/model/lora-segments.js';
import { TsloraError } from '../../src/errors.js';

const i32 = (values: number[]) => Int32Array.from(values);
const plain = (s: ReturnType<typeof buildLoraSegments>) => ({
  segIndptr: [...s.segIndptr],
  weightIndices: [...s.weightIndices],
  permutation: [...s.permutation],
  chunkSize: s.chunkSize,
});

test('triton: one segment per request in physical order, zero-length requests dropped, base kept as -1', () => {
  const s = buildLoraSegments(i32([2, -1, 0, 1]), i32([3, 4, 0, 2]), 'triton', 16);
  assert.deepEqual(plain(s), { segIndptr: [0, 3, 7, 9], weightIndices: [2, -1, 1], permutation: [], chunkSize: 4 });
});

test('csgmv decode: stable sort by slot with base rows first, one segment per slot', () => {
  const s = buildLoraSegments(i32([1, 0, 1, -1, 0]), i32([1, 1, 1, 1, 1]), 'csgmv', 16);
  assert.deepEqual(plain(s), { segIndptr: [0, 1, 3, 5], weightIndices: [-1, 0, 1], permutation: [3, 1, 4, 0, 2], chunkSize: 16 });
});

test('csgmv: runs of one adapter are cut into chunks of at most C; already sorted rows give an empty permutation', () => {
  const s = buildLoraSegments(i32([0, 0, 3]), i32([30, 10, 5]), 'csgmv', 128);
  assert.deepEqual(plain(s), { segIndptr: [0, 16, 32, 40, 45], weightIndices: [0, 0, 0, 3], permutation: [], chunkSize: 16 });
  const big = buildLoraSegments(i32([-1, 2]), i32([100, 300]), 'csgmv', 64);
  assert.equal(big.chunkSize, 64);
  assert.deepEqual([...big.weightIndices], [-1, 2, 2, 2, 2, 2]); // base rows: one segment, never chunked
  assert.deepEqual([...big.segIndptr], [0, 100, 164, 228, 292, 356, 400]);
});

test('chunk size rule e.5.4', () => {
  assert.equal(csgmvChunkSize(1000, 16), 16);
  assert.equal(csgmvChunkSize(256, 128), 128);
  assert.equal(csgmvChunkSize(255, 128), 32);
  assert.equal(csgmvChunkSize(300, 64), 64);
  assert.equal(csgmvChunkSize(64, 128), 32);
  assert.equal(csgmvChunkSize(63, 128), 16);
  assert.equal(csgmvChunkSize(64, 32), 32);
  assert.equal(csgmvChunkSize(10, 32), 16);
});

test('empty batch gives one boundary and no segments', () => {
  for (const backend of ['triton', 'csgmv'] as const) {
    const s = buildLoraSegments(i32([]), i32([]), backend, 16);
    assert.deepEqual([...s.segIndptr], [0]);
    assert.equal(s.weightIndices.length, 0);
  }
});

function rng(seed: number) {
  let state = seed >>> 0;
  return (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
}

test('random batches: every row exactly once, one slot per segment, order kept inside a slot, segments ≤ C', () => {
  const next = rng(7);
  for (let trial = 0; trial < 300; trial++) {
    const n = next(20);
    const slots = i32(Array.from({ length: n }, () => next(6) - 1));
    const counts = i32(Array.from({ length: n }, () => (next(4) === 0 ? 0 : next(3) === 0 ? next(200) : 1)));
    const cap = ([16, 32, 64, 128] as LoraChunkCap[])[next(4)];
    const rowSlot: number[] = [];
    slots.forEach((slot, i) => { for (let t = 0; t < counts[i]; t++) rowSlot.push(slot); });
    const total = rowSlot.length;
    for (const backend of ['triton', 'csgmv'] as const) {
      const s = buildLoraSegments(slots, counts, backend, cap);
      const perm = s.permutation.length === 0 ? rowSlot.map((_, i) => i) : [...s.permutation];
      assert.equal(perm.length, total);
      assert.deepEqual([...perm].sort((a, b) => a - b), rowSlot.map((_, i) => i));
      assert.equal(s.segIndptr[0], 0);
      assert.equal(s.segIndptr[s.segIndptr.length - 1], total);
      assert.equal(s.segIndptr.length, s.weightIndices.length + 1);
      for (let g = 0; g < s.weightIndices.length; g++) {
        const [begin, end] = [s.segIndptr[g], s.segIndptr[g + 1]];
        assert.ok(end > begin, 'no empty segments');
        for (let p = begin; p < end; p++) {
          assert.equal(rowSlot[perm[p]], s.weightIndices[g]);
          if (p > begin) assert.ok(perm[p] > perm[p - 1], 'order kept inside a segment');
        }
        if (backend === 'csgmv' && s.weightIndices[g] >= 0) assert.ok(end - begin <= s.chunkSize);
        if (backend === 'triton') assert.ok(end - begin <= s.chunkSize);
      }
      if (backend === 'csgmv') {
        assert.equal(s.chunkSize, csgmvChunkSize(total, cap));
        const seen = new Set<number>();
        for (let g = 0; g < s.weightIndices.length; g++) {
          const w = s.weightIndices[g];
          if (g > 0 && s.weightIndices[g - 1] !== w) assert.ok(!seen.has(w), 'rows of a slot are contiguous');
          seen.add(w);
        }
      }
    }
  }
});

test('rejects inconsistent input with an internal error', () => {
  assert.throws(() => buildLoraSegments(i32([0]), i32([1, 2]), 'csgmv', 16), TsloraError);
  assert.throws(() => buildLoraSegments(i32([0]), i32([1]), 'csgmv', 48 as LoraChunkCap), /16, 32, 64, 128/);
  assert.throws(() => buildLoraSegments(i32([-2]), i32([1]), 'triton', 16), /slot -2/);
  assert.throws(() => buildLoraSegments(i32([0]), i32([-1]), 'triton', 16), /-1 tokens/);
});
