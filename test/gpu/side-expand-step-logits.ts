// Child process of cuda-side-expand.test.ts (one process per TSLORA_CUDA_LORA_SIDE_EXPAND value): the tiny fixtures
// (llama: the fused rope + attention consumer; qwen2: qkv bias; qwen3: q/k norms, launchQkvPost) on the CUDA backend,
// bf16, both LoRA backends, eager steps and decode-graph replays (max batch 32), teacher-forced (fixed tokens, so runs
// compare step by step) through the step shapes that take the side expand and the ones that keep the in-place expand:
//   batch 1 and 2 with adapters (small-step kernels, eager and graph buckets 1 / 2), 3 mixed rows (graph bucket 4: the
//   tiled kernels), 20 rows of 10 slots incl. base (prefill of 120 rows: in-place; decode: graph bucket 24 on the
//   small-step kernels), 20 rows of one adapter (eager small-step).
// Every logit of every step, in order, as raw float32 to the file named by argv[2].
import { cudaBackendOrSkip, loadFixture, makeRunner, MODELS, readReference, teacherForced, writeLogitRows } from './cuda-parity-helpers.js';

const out = process.argv[2];
if (!out) throw new Error('usage: side-expand-step-logits.ts OUT_FILE');
const { backend, skip } = cudaBackendOrSkip();
if (skip) throw new Error(skip);
const parts: Float32Array[] = [];
for (const model of MODELS) {
  const ref = readReference(model);
  const fx = await loadFixture(model, ref);
  const A = fx.adapters.length;
  const prompt = (b: number, n: number) => Array.from({ length: n }, (_, i) => (b * 37 + i * 11 + 1) % ref.vocabSize);
  const forcedOf = (b: number) => Array.from({ length: 5 }, (_, t) => (b * 13 + t * 29 + 5) % ref.vocabSize);
  const cases: Array<{ slots: number[]; promptLen: number }> = [
    { slots: [0], promptLen: 7 },
    { slots: [1 % A, (A - 1) % A], promptLen: 5 },
    { slots: [-1, 0, 1 % A], promptLen: 6 },
    { slots: Array.from({ length: 20 }, (_, b) => (b % (A + 1)) - 1), promptLen: 6 },
    { slots: Array.from({ length: 20 }, () => 2 % A), promptLen: 4 },
  ];
  for (const loraBackend of ['csgmv', 'triton'] as const) {
    for (const graphMaxBs of [0, 32]) {
      const runner = await makeRunner(fx, backend!, loraBackend, 'bf16', 24 * 16, graphMaxBs);
      for (const c of cases) {
        const prompts = c.slots.map((_, b) => prompt(b, c.promptLen + (b % 3)));
        for (const rows of teacherForced(runner, prompts, c.slots, c.slots.map((_, b) => forcedOf(b)), 5).logits) parts.push(...rows);
      }
      runner.destroy();
    }
  }
}
console.log(`side-expand-step-logits: ${writeLogitRows(out, parts)}`);
