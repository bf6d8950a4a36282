// Child process of cuda-skinny-lora.test.ts (TSLORA_CUDA_SKINNY_LORA is read once per process): the tiny-llama fixture
// on the CUDA backend, decode steps of 1 and 2 rows with adapters (the rows the skinny GEMM takes, where the LoRA
// delta goes into its epilogue when the switch is on): two adapters side by side, a base row beside an adapter row,
// one adapter alone; triton and csgmv, bf16 and fp16, eager steps and decode-graph replays (max batch 8). Every logit
// of every step, in order, as raw float32 to the file named by argv[2]. Teacher-forced, so the runs compare step by
// step.
import { cudaBackendOrSkip, loadFixture, makeRunner, readReference, teacherForced, writeLogitRows } from './cuda-parity-helpers.js';

const out = process.argv[2];
if (!out) throw new Error('usage: skinny-lora-step-logits.ts OUT_FILE');
const { backend, skip } = cudaBackendOrSkip();
if (skip) throw new Error(skip);
const ref = readReference('tiny-llama');
const fx = await loadFixture('tiny-llama', ref);
const second = Math.min(1, fx.adapters.length - 1);
const prompts = [0, 1].map((b) => Array.from({ length: 5 + 4 * b }, (_, i) => (b * 41 + i * 7 + 3) % ref.vocabSize));
const forced = prompts.map((_, b) => Array.from({ length: 6 }, (_, t) => (b * 17 + t * 31 + 2) % ref.vocabSize));
const batches: Array<{ rows: number[]; slots: number[] }> = [
  { rows: [0, 1], slots: [0, second] },
  { rows: [0, 1], slots: [-1, 0] },
  { rows: [1], slots: [second] },
];
const parts: Float32Array[] = [];
for (const dtype of ['bf16', 'f16'] as const) {
  for (const strategy of ['csgmv', 'triton'] as const) {
    for (const graphMaxBs of [0, 8]) {
      const runner = await makeRunner(fx, backend!, strategy, dtype, 8 * 16, graphMaxBs);
      for (const b of batches) {
        const got = teacherForced(runner, b.rows.map((r) => prompts[r]), b.slots, b.rows.map((r) => forced[r]), 6);
        for (const rows of got.logits) parts.push(...rows);
      }
      runner.destroy();
    }
  }
}
console.log(`skinny-lora-step-logits: ${writeLogitRows(out, parts)}`);
