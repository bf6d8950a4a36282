// --tp-size rules (src/engine/model/tensor-parallel.ts): which models split over which sizes, and the messages;
// KV sizing with replicated KV heads.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TsloraError } from '../../../src/errors.js';
import { checkTensorParallelDevice, checkTensorParallelModel, tensorParallelProblem } from '../../../src/engine/model/tensor-parallel.js';
import type { ModelSpec, ModelWeights } from '../../../src/engine/model/types.js';
import { sizeKvCache } from '../../../src/engine/worker/kv-sizing.js';

const llama8b = { numHeads: 32, numKvHeads: 8, intermediateSize: 14336, vocabSize: 128256 };
const fixture = { numHeads: 4, numKvHeads: 2, intermediateSize: 160, vocabSize: 320 };

test('heads, KV heads and the intermediate size must split; fewer KV heads than ranks are replicated', () => {
  for (const tp of [1, 2, 4, 8]) assert.equal(tensorParallelProblem(llama8b, tp), null, `8B shape at ${tp}`);
  assert.equal(tensorParallelProblem(fixture, 4), null, '2 KV heads over 4 ranks: replicated');
  assert.equal(tensorParallelProblem(fixture, 3), "--tp-size 3 does not divide the model's 4 attention heads.");
  assert.match(tensorParallelProblem({ ...fixture, numHeads: 12, numKvHeads: 3 }, 4) ?? '', /the model's 3 KV heads must divide one another/);
  assert.equal(tensorParallelProblem({ ...fixture, intermediateSize: 130 }, 4), "--tp-size 4 does not divide the model's intermediate size 130.");
  assert.equal(tensorParallelProblem({ ...fixture, vocabSize: 321 }, 4), null, 'the vocabulary need not divide');
});

test('a model that cannot split names the sizes it can', () => {
  assert.throws(
    () => checkTensorParallelModel(fixture, 3),
    (e: unknown) => e instanceof TsloraError && e.code === 'usage' && e.hint === 'This model splits over --tp-size 1, 2, 4.',
  );
});

test('the CPU runs 1, 2 or 4 ranks; the CUDA backend refuses more than one GPU in this build', () => {
  for (const tp of [1, 2, 4]) checkTensorParallelDevice('cpu', tp);
  assert.throws(() => checkTensorParallelDevice('cpu', 8), /--tp-size 8: the CPU backend runs 1, 2, 4 tensor-parallel ranks/);
  checkTensorParallelDevice('cuda', 1);
  assert.throws(() => checkTensorParallelDevice('cuda', 2), /multi-GPU tensor parallelism \(NCCL\) is not available in this build/);
});

test('KV sizing counts the replicated KV heads: 2 KV heads over 4 ranks cache 4 heads per position', () => {
  const spec = { numLayers: 2, numKvHeads: 2, headDim: 16, hiddenSize: 64, numHeads: 4, intermediateSize: 128, vocabSize: 384 } as ModelSpec;
  const weights = { files: [], embedTokens: { file: 0, offsetBytes: 0, sizeBytes: 4, dtype: 'f32', shape: [1] }, layers: [] } as unknown as ModelWeights;
  weights.finalNorm = weights.embedTokens;
  weights.lmHead = weights.embedTokens;
  const input = { spec, weights, device: 'cpu' as const, computeBytesPerElement: 4, totalMemoryBytes: 1024 ** 3, memFractionStatic: 0.01, contextLength: 64, blockSize: 16, maxRunningRequests: 4, loraPoolBytes: 0 };
  const perBlock = (tpSize: number) => sizeKvCache({ ...input, tpSize }).bytesPerBlock;
  assert.equal(perBlock(2), perBlock(1), 'split: each head cached once');
  assert.equal(perBlock(4), 2 * perBlock(1), 'replicated on two ranks each');
});
