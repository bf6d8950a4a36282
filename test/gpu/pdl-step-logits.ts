// Child process of cuda-pdl.test.ts (the TSLORA_CUDA_* switches are read once per process): the tiny-llama fixture on the CUDA
// backend, csgmv, bf16, eager steps and decode-graph replays (max batch 8), prefill + 5 teacher-forced decode steps of
// 3 sequences (base and two adapters), then a batch of 1 base; every logit of every step, in order, as raw float32
// to the file named by argv[2]. Teacher-forced by fixed tokens, so the runs compare step by step.
import { cudaBackendOrSkip, loadFixture, makeRunner, readReference, teacherForced, writeLogitRows } from './cuda-parity-helpers.js';

const out = process.argv[2];
if (!out) throw new Error('usage: pdl-step-logits.ts OUT_FILE');
const { backend, skip } = cudaBackendOrSkip();
if (skip) throw new Error(skip);
const ref = readReference('tiny-llama');
const fx = await loadFixture('tiny-llama', ref);
const prompts = [0, 1, 2].map((b) => Array.from({ length: 6 + 3 * b }, (_, i) => (b * 37 + i * 11 + 1) % ref.vocabSize));
const forced = prompts.map((_, b) => Array.from({ length: 6 }, (_, t) => (b * 13 + t * 29 + 5) % ref.vocabSize));
const slots = [-1, 0, Math.min(1, fx.adapters.length - 1)];
const parts: Float32Array[] = [];
for (const graphMaxBs of [0, 8]) {
  const runner = await makeRunner(fx, backend!, 'csgmv', 'bf16', 8 * 16, graphMaxBs);
  for (const rows of teacherForced(runner, prompts, slots, forced, 6).logits) parts.push(...rows);
  for (const rows of teacherForced(runner, [prompts[2]], [-1], [forced[2]], 4).logits) parts.push(...rows);
  runner.destroy();
}
console.log(`pdl-step-logits: ${writeLogitRows(out, parts)}`);
