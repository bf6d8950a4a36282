// The CUDA addon's surface beyond the forward math: deviceInfo, coded errors (and a model that keeps working after
// them), memoryReport, copyKvBlocks, asynchronous slot copies, clearSlot, seeded sampling. Skipped, with the reason,
// where the CUDA addon or a GPU is missing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { ModelRunner } from '../../src/engine/model/runner.js';
import { relativeL2 } from '../native/forward-reference.js';
import { BLOCK, BLOCKS_PER_SEQ, cudaBackendOrSkip, greedy, loadFixture, makeRunner, readReference, type LoadedFixture } from './cuda-parity-helpers.js';

const { backend: cuda, skip } = cudaBackendOrSkip();
const MODEL = 'tiny-llama';

describe('CUDA addon surface', { skip }, () => {
  const ref = readReference(MODEL);
  let fx: LoadedFixture;
  let runner: ModelRunner;
  const prompt = ref.prompts[1];
  const table = Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => i);

  const lastLogits = (r: ModelRunner, slot: number, blockTable = table): Float32Array =>
    r.step([{ tokenIds: prompt, startPosition: 0, blockTable, slot, sampling: greedy, returnLogits: true }])[0].logits as Float32Array;

  before(async () => {
    fx = await loadFixture(MODEL, ref);
    runner = await makeRunner(fx, cuda!, 'csgmv');
  });
  after(() => runner?.destroy());

  it('deviceInfo names the GPU and its memory', () => {
    const info = cuda!.deviceInfo();
    assert.equal(info.device, 'cuda');
    assert.ok(info.gpuCount >= 1);
    assert.ok(info.name.length > 0 && info.name !== 'none');
    assert.ok(info.totalMemoryBytes > 1e9 && info.freeMemoryBytes > 0 && info.freeMemoryBytes <= info.totalMemoryBytes);
    console.log(`cuda-forward-api: ${info.name}, ${(info.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB`);
  });

  it('memoryReport: the KV cache is layers × 2 × blocks × blockSize × kvHeads × headDim × 2 bytes', () => {
    const spec = fx.loaded.spec;
    const report = runner.memoryReport();
    assert.equal(report.kvCacheBytes, spec.numLayers * 2 * 8 * BLOCKS_PER_SEQ * BLOCK * spec.numKvHeads * spec.headDim * 2);
    assert.ok(report.weightBytes > 0);
    assert.ok(report.loraPoolBytes > 0);
  });

  it('bad arguments throw coded errors and the model keeps working', () => {
    const before = lastLogits(runner, -1);
    assert.throws(() => runner.step([{ tokenIds: [ref.vocabSize + 5], startPosition: 0, blockTable: table, slot: -1, sampling: greedy }]), /outside the vocabulary/);
    assert.throws(() => runner.step([{ tokenIds: [1], startPosition: 0, blockTable: [9999], slot: -1, sampling: greedy }]), /kvNumBlocks/);
    assert.throws(() => runner.step([{ tokenIds: [1], startPosition: 0, blockTable: table, slot: 99, sampling: greedy }]));
    assert.throws(() => cuda!.createModel({} as never), /options|spec/);
    assert.throws(() => runner.clearSlot(999), /slot/);
    const afterErrors = lastLogits(runner, -1);
    assert.ok(relativeL2(afterErrors, before) < 1e-6, 'same logits before and after the rejected calls');
  });

  it('computeDtype f32 is refused on CUDA with a message that points to --device cpu', () => {
    assert.throws(
      () => cuda!.createModel({ spec: fx.loaded.spec, weights: fx.loaded.weights, kvNumBlocks: 4, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [], numThreads: 1, computeDtype: 'f32' }),
      /bf16.*f16|device cpu/,
    );
  });

  it('copyKvBlocks: a decode step over copied blocks equals the one over the originals', () => {
    const tokens = prompt;
    const src = table.slice(0, Math.ceil((tokens.length + 1) / BLOCK));
    const dst = src.map((b) => b + 4 * BLOCKS_PER_SEQ);
    runner.step([{ tokenIds: tokens, startPosition: 0, blockTable: table, slot: -1, sampling: greedy }]);
    runner.copyKvBlocks(src, dst);
    const copiedTable = table.map((b) => b + 4 * BLOCKS_PER_SEQ);
    const next = 7;
    const a = runner.step([{ tokenIds: [next], startPosition: tokens.length, blockTable: table, slot: -1, sampling: greedy, returnLogits: true }])[0].logits!;
    const b = runner.step([{ tokenIds: [next], startPosition: tokens.length, blockTable: copiedTable, slot: -1, sampling: greedy, returnLogits: true }])[0].logits!;
    assert.ok(relativeL2(b, a) < 1e-6, `copied blocks give the same logits (${relativeL2(b, a)})`);
  });

  it('copyAdapterToSlotAsync gives the same slot as the synchronous copy; clearSlot makes it the base model', async () => {
    assert.ok(fx.adapters.length >= 2);
    const adapter = fx.adapters[1];
    const syncLogits = lastLogits(runner, 1);
    const host = await runner.loadHostAdapter(adapter.spec);
    assert.ok(cuda!.hostAdapterSizeBytes(host) > 0);
    runner.clearSlot(1);
    const base = lastLogits(runner, -1);
    assert.ok(relativeL2(lastLogits(runner, 1), base) < 1e-6, 'a cleared slot computes the base model');
    await runner.copyAdapterToSlotAsync(1, host);
    runner.freeHostAdapter(host);
    const asyncLogits = lastLogits(runner, 1);
    assert.ok(relativeL2(asyncLogits, syncLogits) < 1e-6, `async copy = sync copy (${relativeL2(asyncLogits, syncLogits)})`);
    assert.ok(relativeL2(asyncLogits, base) > 1e-4, 'the adapter changes the logits');
  });

  it('greedy rows finished on the GPU equal the host sampler (same tokens and logprobs)', () => {
    const seqs = (returnLogits: boolean) => ref.prompts.map((p, b) => ({
      tokenIds: p, startPosition: 0, blockTable: table.map((x) => x + b * BLOCKS_PER_SEQ), slot: b % 2 === 0 ? -1 : 0, sampling: greedy, returnLogits,
    }));
    const onGpu = runner.step(seqs(false));
    const onHost = runner.step(seqs(true));
    assert.deepEqual(onGpu.map((r) => r.tokenId), onHost.map((r) => r.tokenId));
    onGpu.forEach((r, i) => assert.ok(Math.abs(r.logprob - onHost[i].logprob) < 1e-4, `row ${i}: logprob ${r.logprob} vs ${onHost[i].logprob}`));
    assert.ok(onGpu.every((r) => r.logits === undefined));
  });

  it('seeded sampling is reproducible and reports finite logprobs', () => {
    const sampling = { ...greedy, temperature: 1, topP: 0.9, topK: 20, seed: 1234, topLogprobsNum: 3, wantLogprob: true };
    const run = () => runner.step([{ tokenIds: prompt, startPosition: 0, blockTable: table, slot: 0, sampling }])[0];
    const a = run();
    const b = run();
    assert.equal(a.tokenId, b.tokenId);
    assert.ok(Number.isFinite(a.logprob) && a.logprob <= 0);
    assert.equal(a.topLogprobs?.length, 3);
  });
});
