// Steps with more LoRA segments than the device pool's static maximum (128 + slots) run as several passes over row
// ranges (native/src/cuda/engine/lora-passes.h). 300 sequences in one step — triton: 300 segments, csgmv: ~150 chunks,
// which since session 23 the planner counts as the pool coalesces them (one segment per slot), so csgmv runs one
// coalesced pass here — must give every row the logits it gets when the same sequences run in groups of 60 (one pass
// each), and match the CPU backend. tiny-qwen2 has fp16 weights and runs in fp16 (the closest CUDA dtype to fp32, see the parity test).
// Tolerances: same engine 1e-2, CPU backend 3e-2 relative L2 (as in cuda-parity-fixtures.test.ts for fp16).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSequence } from '../../src/engine/model/runner-types.js';
import { relativeL2 } from '../native/forward-reference.js';
import { cudaBackendOrSkip, greedy, loadFixture, makeRunner, readReference, type LoadedFixture } from './cuda-parity-helpers.js';

const { backend: cuda, skip } = cudaBackendOrSkip();
const MODEL = 'tiny-qwen2';
const NUM_SEQS = 300;
const GROUP = 60;

describe('CUDA LoRA steps split into passes', { skip }, () => {
  const ref = readReference(MODEL);
  let fx: LoadedFixture;
  const runners: ModelRunner[] = [];

  before(async () => {
    fx = await loadFixture(MODEL, ref);
  });
  after(() => runners.forEach((r) => r.destroy()));

  const seqs = (): StepSequence[] =>
    Array.from({ length: NUM_SEQS }, (_, b) => ({
      tokenIds: ref.prompts[b % ref.prompts.length], startPosition: 0, blockTable: [3 * b, 3 * b + 1, 3 * b + 2],
      slot: b % fx.adapters.length, sampling: greedy, returnLogits: true,
    }));

  for (const lb of ['triton', 'csgmv'] as const) {
    it(`${lb}: ${NUM_SEQS} sequences in one step equal ${GROUP}-sequence steps and the CPU backend`, async () => {
      assert.ok(fx.adapters.length >= 2);
      const gpu = await makeRunner(fx, cuda!, lb, 'f16', 3 * NUM_SEQS + 8);
      const cpuRunner = await makeRunner(fx, loadNativeBackend('cpu'), lb, undefined, 3 * NUM_SEQS + 8);
      runners.push(gpu, cpuRunner);
      const all = seqs();
      const whole = gpu.step(all);
      const grouped: typeof whole = [];
      for (let g = 0; g < NUM_SEQS; g += GROUP) grouped.push(...gpu.step(all.slice(g, g + GROUP)));
      const onCpu = cpuRunner.step(all);
      let worstSame = 0;
      let worstCpu = 0;
      whole.forEach((r, b) => {
        worstSame = Math.max(worstSame, relativeL2(r.logits!, grouped[b].logits!));
        worstCpu = Math.max(worstCpu, relativeL2(r.logits!, onCpu[b].logits!));
      });
      console.log(`cuda-passes ${lb}: one step vs groups of ${GROUP}: ${worstSame.toExponential(2)}, vs CPU: ${worstCpu.toExponential(2)}`);
      assert.ok(worstSame < 1e-2, `one step vs groups: relative L2 ${worstSame}`);
      assert.ok(worstCpu < 3e-2, `CUDA vs CPU: relative L2 ${worstCpu}`);
    });
  }
});
