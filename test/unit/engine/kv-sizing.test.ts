import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sizeKvCache } from '../../../src/engine/worker/kv-sizing.js';
import type { ModelSpec, ModelWeights, TensorRef } from '../../../src/engine/model/types.js';

const t = (shape: number[]): TensorRef => ({ file: 0, offsetBytes: 0, sizeBytes: shape.reduce((a, b) => a * b, 2), dtype: 'bf16', shape });
const spec = { numLayers: 2, numKvHeads: 2, headDim: 16, hiddenSize: 64, numHeads: 4, intermediateSize: 128, vocabSize: 384 } as ModelSpec;
const layer = { inputNorm: t([64]), postAttentionNorm: t([64]), qProj: t([64, 64]), kProj: t([32, 64]), vProj: t([32, 64]), oProj: t([64, 64]), gateProj: t([128, 64]), upProj: t([128, 64]), downProj: t([64, 128]) };
const weights: ModelWeights = { files: [], embedTokens: t([384, 64]), finalNorm: t([64]), lmHead: t([384, 64]), layers: [layer, layer] };
const GiB = 1024 ** 3;

test('KV sizing: GPU fraction, CPU default, cap at useful size, and a clear error when too small', () => {
  const base = { spec, weights, computeBytesPerElement: 2, contextLength: 256, blockSize: 16, loraPoolBytes: 0 };
  const gpu = sizeKvCache({ ...base, device: 'cuda', totalMemoryBytes: 140 * GiB, memFractionStatic: null, maxRunningRequests: null });
  assert.equal(gpu.numBlocks, 512 * 16 * 2, 'capped at what 512 requests at full context could use');
  assert.equal(gpu.maxRunningRequests, 512);
  const cpu = sizeKvCache({ ...base, device: 'cpu', computeBytesPerElement: 4, totalMemoryBytes: 8 * GiB, memFractionStatic: null, maxRunningRequests: 4 });
  assert.equal(cpu.numBlocks, 4 * 16, 'enough for the running cap at full context');
  assert.equal(cpu.maxRunningRequests, 4);
  const tight = sizeKvCache({ ...base, device: 'cuda', totalMemoryBytes: 1 * GiB, memFractionStatic: 0.001, maxRunningRequests: null });
  assert.ok(tight.numBlocks >= 16 && tight.numBlocks < 1000);
  assert.throws(
    () => sizeKvCache({ ...base, device: 'cuda', totalMemoryBytes: 1 * GiB, memFractionStatic: 0.00001, maxRunningRequests: null }),
    /fewer than one request at the context length \(256\)/,
  );
});

test('KV sizing: a bf16 CPU KV cache takes half the bytes per block, so a memory fraction holds twice the blocks', () => {
  const base = { spec, weights, computeBytesPerElement: 4, contextLength: 256, blockSize: 16, loraPoolBytes: 0, device: 'cpu' as const, maxRunningRequests: 512 };
  const f32 = sizeKvCache({ ...base, totalMemoryBytes: 1 * GiB, memFractionStatic: 0.01 });
  const bf16 = sizeKvCache({ ...base, kvBytesPerElement: 2, totalMemoryBytes: 1 * GiB, memFractionStatic: 0.01 });
  assert.equal(bf16.bytesPerBlock * 2, f32.bytesPerBlock);
  assert.equal(f32.bytesPerBlock, 2 * 2 * 2 * 16 * 4 * 16, 'K and V × layers × KV heads × head dim × 4 bytes × block');
  assert.ok(Math.abs(bf16.numBlocks - 2 * f32.numBlocks) <= 1, `${bf16.numBlocks} vs 2 × ${f32.numBlocks}`);
});
