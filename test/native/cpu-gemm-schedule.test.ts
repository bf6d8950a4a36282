// How the CPU GEMM hands its columns to threads and prefetches its weights (cpu/gemm.h: setGemmOwnedRanges,
// setGemmChunks, setGemmPrefetchFlags) changes no result: every column is one call's fixed-order sum whoever runs it.
// Prefills and decode steps of a random bf16 model with a fused LoRA (shrink riding the base GEMM, expand in its
// epilogue) and base rows give the default's bits under every schedule (owned ranges for plain GEMMs or all, 1-16
// pieces per thread, the evened-out runs after an uneven shrink head or equal runs) and prefetch flag, on 2 and 3
// threads, under every CPU kernel set this machine has (each set's packed prefill path and row-dot tiles sum in
// different orders, so a column must take the same one whatever range it falls in); the owned-range schedule runs each
// block exactly once, and a thread that starts late finds its pieces taken.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel } from './forward-random-model.js';
import { prefillThenDecode } from './lora-fusion-steps.js';

const backend = loadNativeBackend('cpu');
const ops = loadNativeTestingOps();
const root = mkdtempSync(join(tmpdir(), 'tslora-gemm-schedule-'));
const ownedDefault = ops.setGemmOwnedRanges(0) as 0 | 1 | 2;
const [baseFlagsDefault, ownFlagsDefault] = ops.setGemmPrefetchFlags(0, 0);
const epilogueChunksDefault = ops.setGemmEpilogueChunks(0);
const isaDefault = ops.cpuKernelIsa().active;
const restore = () => {
  ops.setGemmOwnedRanges(ownedDefault);
  ops.setGemmPrefetchFlags(baseFlagsDefault, ownFlagsDefault);
  ops.setGemmChunks(4);
  ops.setGemmEpilogueChunks(epilogueChunksDefault);
};
restore();
after(() => {
  restore();
  ops.selectCpuKernelIsa(isaDefault);
  rmSync(root, { recursive: true, force: true });
});

// hidden 128: qkv 256 rows (16 blocks of 16), gate | up 768, lm_head 301 (a partial block): every thread's pieces
// hold whole blocks and some end inside a part.
const model = writeRandomModel({ dir: join(root, 'model'), hidden: 128, intermediate: 384, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 301, dtype: 'bf16', keepValues: true, seed: 41 });
const all7: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const adapter = writeRandomAdapter(join(root, 'a'), model.spec, 8, all7, 303, 2, true);
const prompt = [3, 17, 42, 5, 96, 0, 64, 23];

async function runner(numThreads: number): Promise<ModelRunner> {
  const r = new ModelRunner(model, {
    backend, kvNumBlocks: 32, kvBlockSize: 4, loraSlots: 2, loraMaxRank: 8, loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
    loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads, loraPoolDtype: 'bf16',
  });
  const host = await r.loadHostAdapter(adapter.adapter);
  r.copyAdapterToSlot(1, host);
  r.freeHostAdapter(host);
  return r;
}

// chunks: per thread of a plain GEMM; epilogueChunks: of a GEMM with a fused expand (0 = chosen from its bytes, here
// 1 per thread: the runs after an uneven shrink head are the plan's evened-out chunks; 4: equal runs in 4 pieces).
type Schedule = { owned: 0 | 1 | 2; chunks: number; epilogueChunks?: number; baseFlags: number; ownFlags: number };
const FAR = 1, STOP_AT_END = 2;  // cpu/simd.h kPrefetchFar, kPrefetchStopAtEnd
const schedules: Schedule[] = [
  { owned: 1, chunks: 1, baseFlags: 0, ownFlags: 0 },
  { owned: 2, chunks: 4, baseFlags: 0, ownFlags: STOP_AT_END },
  { owned: 2, chunks: 16, baseFlags: FAR, ownFlags: FAR | STOP_AT_END },
  { owned: 2, chunks: 4, epilogueChunks: 4, baseFlags: FAR | STOP_AT_END, ownFlags: FAR },
  { owned: 0, chunks: 1, baseFlags: STOP_AT_END, ownFlags: FAR | STOP_AT_END },
  { owned: 1, chunks: 4, baseFlags: FAR, ownFlags: 0 },
];

describe('CPU GEMM schedules and prefetch flags', () => {
  for (const numThreads of [2, 3]) {
    it(`${numThreads} threads: base and fused-LoRA steps give the default's bits under every schedule and kernel set`, async () => {
      const r = await runner(numThreads);
      try {
        for (const isa of ops.cpuKernelIsa().available) {
          ops.selectCpuKernelIsa(isa);
          for (const slots of [[-1], [1], [1, -1, 1]]) {
            restore();
            const expected = prefillThenDecode(r, slots, prompt, 301).map((l) => Array.from(l));
            for (const s of schedules) {
              ops.setGemmOwnedRanges(s.owned);
              ops.setGemmChunks(s.chunks);
              ops.setGemmEpilogueChunks(s.epilogueChunks ?? 0);
              ops.setGemmPrefetchFlags(s.baseFlags, s.ownFlags);
              const got = prefillThenDecode(r, slots, prompt, 301).map((l) => Array.from(l));
              assert.deepEqual(got, expected, `${isa} kernels, slots ${slots}, ${JSON.stringify(s)}`);
            }
          }
        }
      } finally {
        restore();
        ops.selectCpuKernelIsa(isaDefault);
        r.destroy();
      }
    });
  }

  it('owned ranges run every block once, and a late owner finds its pieces taken', () => {
    for (const [blocks, threads, pieces] of [[48, 2, 4], [19, 3, 4], [7, 2, 16], [1000, 4, 8], [0, 2, 4]]) {
      const { runs, lateRan } = ops.ownedRangesTrial(blocks, threads, pieces);
      assert.deepEqual(Array.from(runs), new Array(blocks).fill(1), `${blocks} blocks, ${threads} threads, ${pieces} pieces`);
      assert.equal(lateRan, 0, `${blocks} blocks, ${threads} threads: the late owner ran ${lateRan} blocks itself`);
    }
  });
});
