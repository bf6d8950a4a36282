// Child process of cuda-store-first.test.ts and cuda-wide-shrink.test.ts (one process per switch setting): a 2-layer
// Llama-3.2-1B-shaped model (`tslora synth model`, argv[3]) with three r16 adapters of every projection (argv[4]) on the
// CUDA backend, bf16, triton and csgmv with chunks of 128 (both give segments longer than 32 rows: the wide expand,
// where the store form exists), a prefill of 280 rows (150, 90 and 40 tokens: adapter 0, base, adapter 1) and two
// teacher-forced decode steps (small-step kernels: never store-first). Every logit of every step, in order, as raw
// float32 to argv[2].
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { fillAdapterSlots, readBenchAdapters } from '../../bench/cuda/decode-scenario.js';
import { cudaBackendOrSkip, greedy, writeLogitRows } from './cuda-parity-helpers.js';

const [out, modelDir, adaptersDir] = process.argv.slice(2);
if (!out || !modelDir || !adaptersDir) throw new Error('usage: store-first-step-logits.ts OUT_FILE MODEL_DIR ADAPTERS_DIR');
const { backend, skip } = cudaBackendOrSkip();
if (skip) throw new Error(skip);
const loaded = await loadModel(modelDir);
const adapters = await readBenchAdapters(adaptersDir, loaded.spec);
const BLOCK = 16, BLOCKS_PER_SEQ = 12;
const lengths = [150, 90, 40], slots = [0, -1, 1];
const prompts = lengths.map((n, b) => Array.from({ length: n }, (_, i) => (b * 53 + i * 17 + 3) % loaded.spec.vocabSize));
const tables = prompts.map((_, b) => Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => b * BLOCKS_PER_SEQ + i));
const parts: Float32Array[] = [];
for (const [loraBackend, chunk] of [['triton', 16], ['csgmv', 128]] as const) {
  const runner = new ModelRunner(loaded, {
    backend: backend!, kvNumBlocks: 3 * BLOCKS_PER_SEQ + 4, kvBlockSize: BLOCK, loraSlots: 8, loraMaxRank: 16,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend, maxLoraChunkSize: chunk, numThreads: 2,
    computeDtype: 'bf16',
  });
  await fillAdapterSlots(runner, adapters);
  let results = runner.step(prompts.map((p, b) => ({ tokenIds: p, startPosition: 0, blockTable: tables[b], slot: slots[b], sampling: greedy, returnLogits: true })));
  for (let t = 0; t < 3; t++) {
    for (const r of results) parts.push(r.logits as Float32Array);
    if (t === 2) break;
    results = runner.step(prompts.map((p, b) => ({
      tokenIds: [(b * 7 + t * 11 + 1) % loaded.spec.vocabSize], startPosition: p.length + t, blockTable: tables[b], slot: slots[b], sampling: greedy,
      returnLogits: true,
    })));
  }
  runner.destroy();
}
console.log(`store-first-step-logits: ${writeLogitRows(out, parts)}`);
