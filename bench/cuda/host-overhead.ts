/**
 * What the engine's host side (JavaScript) adds to a decode step: the real Scheduler and ModelRunner serve `c` greedy
 * requests (256 prompt / 64 output tokens, 8 adapters), with overlap scheduling off and on (issue #12, "zero-overhead
 * scheduling"). Per decode step (one scheduler.step() call, which processes one step):
 *   - JS host ms: the calling thread's time outside the native forward — admission, step planning, the step's typed
 *     arrays, reading the results, the updates' structured clone that postMessage makes (off: the wall time minus the
 *     timed forward; on: the wall time minus the time blocked in forwardWait);
 *   - exposed ms: what the host adds to the step, wall time minus the forward's own time (on: the step thread's
 *     clock) — the JS work that did not hide under the forward, plus the launch/wait hand-off.
 *   node --import tsx bench/cuda/host-overhead.ts --model DIR --adapters DIR [--device cpu|cuda] [--concurrency 1,64]
 *     [--overlap off,on]
 * DIR: `tslora synth model --shape tiny --out DIR` (any shape; the JS part barely depends on it) and `tslora synth
 * adapters --model DIR --count 8 --rank 16 --targets all --out ADIR`. Prints the median and p90 over decode steps.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { loadNativeBackend } from '../../src/binding/index.js';
import type { NativeBackend } from '../../src/binding/types.js';
import { KvCacheManager } from '../../src/engine/kv/kv-cache.js';
import { readAdapter } from '../../src/engine/model/adapter.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { Scheduler } from '../../src/engine/scheduler/scheduler.js';
import type { EngineRequest } from '../../src/engine/types.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    adapters: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    concurrency: { type: 'string', default: '1,64' },
    overlap: { type: 'string', default: 'off,on' },
  },
});
if (!args.model || !args.adapters) throw new Error('usage: --model DIR --adapters DIR [--device cpu|cuda] [--concurrency 1,64]');
const PROMPT = 256;
const OUTPUT = 64;
const BLOCK = 16;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

const native = loadNativeBackend(args.device as 'cpu' | 'cuda');
let forwardMs = 0; // the forward's own time (sync: timed here; overlap: the step thread's clock)
let blockedMs = 0; // the calling thread's time inside forward / forwardWait
// The same backend; only its forward entry points are timed.
const backend: NativeBackend = {
  ...native,
  forward: (model, step) => {
    const t0 = performance.now();
    const out = native.forward(model, step);
    forwardMs += performance.now() - t0;
    blockedMs += performance.now() - t0;
    return out;
  },
  forwardWait: (model) => {
    const t0 = performance.now();
    const out = native.forwardWait!(model);
    blockedMs += performance.now() - t0;
    forwardMs += out.forwardMs ?? 0;
    return out;
  },
};
const loaded = await loadModel(args.model);
const adapters = [];
for (let i = 0; i < 8; i++) adapters.push((await readAdapter(join(args.adapters, `lora-${i}`), loaded.spec, { maxRank: 64, targetModules: null, strict: false })).adapter);
const rank = Math.max(...adapters.map((a) => a.rank));

for (const overlap of args.overlap!.split(',')) for (const c of args.concurrency!.split(',').map(Number)) {
  const kvBlocks = c * Math.ceil((PROMPT + OUTPUT) / BLOCK) + 16;
  const runner = new ModelRunner(loaded, {
    backend, kvNumBlocks: kvBlocks, kvBlockSize: BLOCK, loraSlots: 8, loraMaxRank: rank,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 0,
  });
  const scheduler = new Scheduler(runner, {
    numSlots: 8, loraEnabled: true, evictionPolicy: 'lru', maxRunningRequests: Math.max(c, 1), chunkedPrefillSize: 4096,
    overlapLoading: false, drainThresholdMs: 0, eosTokenIds: [], kv: new KvCacheManager(kvBlocks, BLOCK, false),
    overlapSchedule: overlap === 'on',
  });
  for (let a = 0; a < 8; a++) scheduler.addAdapter(`lora-${a}`, await runner.loadHostAdapter(adapters[a]), false);
  for (let i = 0; i < c; i++) {
    const req: EngineRequest = {
      rid: `r${i}`, promptTokenIds: Array.from({ length: PROMPT }, (_, k) => (i * 131 + k * 7 + 3) % loaded.spec.vocabSize),
      adapterId: `lora-${i % 8}`, logprobStartLen: -1, maxTotalTokens: PROMPT + OUTPUT,
      sampling: { temperature: 0, topP: 1, topK: -1, minP: 0, seed: 1, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0,
        maxNewTokens: OUTPUT, minNewTokens: 0, stopTokenIds: [], ignoreEos: true, returnLogprob: false, topLogprobsNum: 0 },
    };
    scheduler.submit(req);
  }
  const hostMs: number[] = [];
  const exposedMs: number[] = [];
  const stepMs: number[] = [];
  while (scheduler.hasWork()) {
    const decode = scheduler.stats().running === c && scheduler.counters.generatedTokens >= 2 * c;  // past every prefill
    forwardMs = 0;
    blockedMs = 0;
    const t0 = performance.now();
    const updates = scheduler.step();
    structuredClone(updates);  // what the worker's postMessage copies
    const ms = performance.now() - t0;
    if (decode && updates.length > 0 && forwardMs > 0) {
      hostMs.push(ms - blockedMs);
      exposedMs.push(ms - forwardMs);
      stepMs.push(ms);
    }
  }
  const p = (xs: number[], q: number) => (xs.length ? quantile(xs, q).toFixed(3) : 'n/a');
  console.log(`host-overhead ${args.device} overlap ${overlap.padEnd(3)} c=${String(c).padStart(3)}: JS host ms per decode step p50 ${p(hostMs, 0.5)} ` +
    `p90 ${p(hostMs, 0.9)}; exposed (step wall - forward) p50 ${p(exposedMs, 0.5)} ms; whole step p50 ${p(stepMs, 0.5)} ms (${hostMs.length} steps)`);
  runner.destroy();
}
