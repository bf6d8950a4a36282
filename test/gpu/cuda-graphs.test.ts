// CUDA graphs for decode (--cuda-graph-max-bs; native/src/cuda/engine/decode-graph.cu, spec e.10): a runner with
// cudaGraphMaxBatchSize 8 against an eager runner (graphs off) on the same steps, tiny-llama fixture, every adapter
// the CUDA kernels support, both LoRA strategies, bf16. The graph bakes in the LoRA grid of its bucket and the
// addresses of every static table; the cases are the ones where a graph can go wrong:
//  - capture on an all-base batch of 3 padded to a graph of 4, then replays with more adapters / segments than at
//    capture (3 distinct adapters), with a changed mix (base + repeated adapter), after an adapter was evicted
//    (clearSlot) and the batch is all base again;
//  - a prefill of more tokens in between (the step buffers grow, every graph must be recaptured);
//  - an exact bucket (4 sequences) and a second bucket (5 → 8), then back to 3 → 4;
//  - greedy rows finished on the GPU (no logits copied) give the eager runner's tokens.
// Pass: every decode step's logits within relative L2 2e-2 of the eager runner's (the graph's LoRA grid differs, so
// split-K sums may round differently; measured values are logged) and the same argmax unless the eager top-2
// margin is below twice max |graph − eager| (near-tie, counted).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSequence } from '../../src/engine/model/runner-types.js';
import { relativeL2 } from '../native/forward-reference.js';
import {
  BLOCKS_PER_SEQ, argmax, cudaBackendOrSkip, greedy, loadFixture, makeRunner, maxAbsDiff, readReference, top2Margin,
  type LoadedFixture,
} from './cuda-parity-helpers.js';

const MODEL = 'tiny-llama';
const TOLERANCE = 2e-2;
const { backend: cuda, skip } = cudaBackendOrSkip();

describe('CUDA graphs for decode: replays match eager steps', { skip }, () => {
  const ref = skip ? null : readReference(MODEL);
  let fx: LoadedFixture;
  const pairs: Array<{ lb: 'csgmv' | 'triton'; graphed: ModelRunner; eager: ModelRunner }> = [];

  before(async () => {
    fx = await loadFixture(MODEL, ref!);
    assert.ok(fx.adapters.length >= 3, 'tiny-llama has at least 3 adapters the CUDA kernels support');
    for (const lb of ['csgmv', 'triton'] as const) {
      pairs.push({
        lb,
        graphed: await makeRunner(fx, cuda!, lb, 'bf16', 10 * BLOCKS_PER_SEQ, 8),
        eager: await makeRunner(fx, cuda!, lb, 'bf16', 10 * BLOCKS_PER_SEQ, 0),
      });
    }
  });
  after(() => {
    for (const p of pairs) {
      p.graphed.destroy();
      p.eager.destroy();
    }
  });

  it('padded buckets, more segments than at capture, changing mixes, eviction, buffer growth', () => {
    const failures: string[] = [];
    for (const { lb, graphed, eager } of pairs) {
      const prompts = Array.from({ length: 9 }, (_, b) => Array.from({ length: 5 + (b % 4) * 3 }, (_, i) => (b * 37 + i * 11 + 1) % ref!.vocabSize));
      const table = (b: number) => Array.from({ length: BLOCKS_PER_SEQ }, (_, i) => b * BLOCKS_PER_SEQ + i);
      const length = prompts.map((p) => p.length);
      const next: number[] = prompts.map(() => 0);
      let worst = 0;
      let nearTies = 0;
      let decodeSteps = 0;
      // Runs one step on both runners; decode steps (one token per sequence) are compared.
      const both = (label: string, seqs: Array<{ b: number; slot: number }>, prefill: boolean, returnLogits = true) => {
        const build = (): StepSequence[] => seqs.map(({ b, slot }) => ({
          tokenIds: prefill ? prompts[b] : [next[b]], startPosition: prefill ? 0 : length[b], blockTable: table(b), slot,
          sampling: greedy, returnLogits,
        }));
        const e = eager.step(build());
        const g = graphed.step(build());
        seqs.forEach(({ b }, i) => {
          if (returnLogits) {
            const el = e[i].logits as Float32Array;
            const gl = g[i].logits as Float32Array;
            const err = relativeL2(gl, el);
            worst = Math.max(worst, err);
            if (!(err < TOLERANCE)) failures.push(`${lb} ${label} row ${i}: relative L2 ${err}`);
            if (argmax(gl) !== argmax(el)) {
              if (!(top2Margin(el) < 2 * maxAbsDiff(gl, el))) failures.push(`${lb} ${label} row ${i}: argmax ${argmax(gl)} ≠ eager ${argmax(el)}`);
              nearTies++;
            }
          } else if (g[i].tokenId !== e[i].tokenId) failures.push(`${lb} ${label} row ${i}: GPU-greedy token ${g[i].tokenId} ≠ eager ${e[i].tokenId}`);
          if (!prefill) length[b] += 1;
          next[b] = e[i].tokenId; // teacher-forced by the eager runner
        });
        if (!prefill) decodeSteps++;
      };
      const [a0, a1, a2] = [0, 1, 2];
      both('prefill 0-2', [{ b: 0, slot: -1 }, { b: 1, slot: -1 }, { b: 2, slot: -1 }], true);
      both('capture: all base, 3 in a graph of 4', [{ b: 0, slot: -1 }, { b: 1, slot: -1 }, { b: 2, slot: -1 }], false);
      both('replay: 3 distinct adapters', [{ b: 0, slot: a0 }, { b: 1, slot: a1 }, { b: 2, slot: a2 }], false);
      both('replay: mix changed', [{ b: 0, slot: a2 }, { b: 1, slot: -1 }, { b: 2, slot: a2 }], false);
      both('replay: GPU greedy', [{ b: 0, slot: a1 }, { b: 1, slot: a0 }, { b: 2, slot: -1 }], false, false);
      graphed.clearSlot(a1);
      eager.clearSlot(a1);
      both('replay: all base after eviction', [{ b: 0, slot: -1 }, { b: 1, slot: -1 }, { b: 2, slot: -1 }], false);
      both('replay: evicted slot reads zeros', [{ b: 0, slot: a1 }, { b: 1, slot: a0 }, { b: 2, slot: -1 }], false);
      // A larger prefill (5 sequences, more tokens): the step buffers may grow, stale graphs must be recaptured.
      both('prefill 3-8', [3, 4, 5, 6, 7, 8].map((b) => ({ b, slot: b % 3 === 1 ? -1 : b % 3 })), true);
      both('exact bucket 4', [0, 1, 2, 3].map((b) => ({ b, slot: [a0, -1, a2, a0][b] })), false);
      both('bucket 8 with 5', [0, 2, 4, 6, 8].map((b, i) => ({ b, slot: [a2, a0, -1, a2, a0][i] })), false);
      both('bucket 8 with 8', [1, 2, 3, 4, 5, 6, 7, 8].map((b, i) => ({ b, slot: i % 3 === 0 ? -1 : (i % 2 === 0 ? a0 : a2) })), false);
      both('back to 3 in 4', [{ b: 5, slot: a2 }, { b: 6, slot: a0 }, { b: 7, slot: -1 }], false);
      console.log(`cuda-graphs ${lb}: ${decodeSteps} decode steps, max rel-L2 graph vs eager ${worst.toExponential(2)}, near-ties ${nearTies}`);
    }
    assert.deepEqual(failures, []);
  });
});
