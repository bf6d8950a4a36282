// The step pair of the LoRA fusion tests (lora-fused-shrink, lora-fused-expand): a prefill of one sequence per slot
// (prompt tokens [0, 7), shifted per sequence), then one decode step (token 7); every row's logits, flattened.
import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSequence } from '../../src/engine/model/runner-types.js';
import { greedy } from './forward-random-model.js';

export function prefillThenDecode(r: ModelRunner, slots: number[], prompt: number[], vocab: number): Float32Array[] {
  const seq = (b: number, start: number, end: number): StepSequence => ({
    tokenIds: prompt.slice(start, end).map((t) => (t + 13 * b) % vocab), startPosition: start,
    blockTable: [4 * b, 4 * b + 1, 4 * b + 2], slot: slots[b], sampling: greedy, returnLogits: true,
  });
  const pre = r.step(slots.map((_, b) => seq(b, 0, 7)));
  const dec = r.step(slots.map((_, b) => seq(b, 7, 8)));
  return [...pre, ...dec].map((o) => o.logits!);
}
