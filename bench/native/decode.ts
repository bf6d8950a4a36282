/**
 * Native CPU microbenchmark (not a test): decode-step speed against this machine's copy bandwidth, and the cost of
 * 8 distinct LoRA adapters in a batch of 8.
 *   node --import tsx bench/native/decode.ts [--preset 125m] [--layers 16] [--hidden 1024] [--intermediate 2816]
 *     [--kv-heads 4] [--vocab 32000] [--dtype bf16|f16|f32] [--rank 16] [--steps 20] [--threads 2] [--dir /tmp/...]
 *     [--skip-lora] [--lora-pool-dtype f32|bf16] [--isa baseline|avx2|avx512] [--json]
 * --preset 125m: the synthetic 125M-class Llama of the llama.cpp comparison (12 layers, hidden 768, intermediate 2048,
 * 12 heads / 4 KV heads, vocab 32000, bf16). --isa forces one copy of the runtime-dispatched CPU kernels.
 * Generates (once, cached in /tmp/tslora-bench-native) a random bf16 Llama of ~240M parameters and 8 random rank-16
 * adapters over all seven projections. Copy bandwidth counts bytes read + bytes written, measured right before and
 * after each timed phase (it drifts on shared machines).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel, type RandomModel } from '../../test/native/forward-random-model.js';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: '16' },
    hidden: { type: 'string', default: '1024' },
    intermediate: { type: 'string', default: '2816' },
    vocab: { type: 'string', default: '32000' },
    'kv-heads': { type: 'string' },
    dtype: { type: 'string', default: 'bf16' },
    steps: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    rank: { type: 'string', default: '16' },
    dir: { type: 'string', default: '/tmp/tslora-bench-native' },
    json: { type: 'boolean', default: false },
    'skip-lora': { type: 'boolean', default: false },
    'lora-pool-dtype': { type: 'string', default: 'f32' },
    isa: { type: 'string' },
    preset: { type: 'string' },
  },
});
if (args.preset === '125m') Object.assign(args, { hidden: '768', layers: '12', intermediate: '2048', 'kv-heads': '4', dtype: 'bf16' });
else if (args.preset !== undefined) throw new Error(`--preset: unknown preset '${args.preset}' (known: 125m)`);
const cfg = {
  hidden: Number(args.hidden),
  intermediate: Number(args.intermediate),
  numLayers: Number(args.layers),
  numHeads: Number(args.hidden) / 64,
  numKvHeads: args['kv-heads'] ? Number(args['kv-heads']) : Math.max(1, Number(args.hidden) / 256),
  dtype: args.dtype as 'bf16' | 'f16' | 'f32',
  vocab: Number(args.vocab),
  rank: Number(args.rank),
};
const steps = Number(args.steps);
const threads = Number(args.threads);
const ops = loadNativeTestingOps();
if (args.isa) ops.selectCpuKernelIsa(args.isa);
const isa = ops.cpuKernelIsa();
const backend = loadNativeBackend('cpu');
const mb = (b: number) => (b / 2 ** 20).toFixed(1);

function prepare(): { model: RandomModel; adapters: AdapterSpec[] } {
  const stamp = join(args.dir, 'bench.json');
  const key = JSON.stringify(cfg);
  if (existsSync(stamp)) {
    const saved = JSON.parse(readFileSync(stamp, 'utf8'));
    if (saved.key === key) return { model: { ...saved.model, values: new Map() }, adapters: saved.adapters };
  }
  const t0 = performance.now();
  const model = writeRandomModel({ dir: join(args.dir, 'model'), ...cfg, seed: 7, weightScale: 1 });
  const modules: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const adapters = Array.from({ length: 8 }, (_, i) => writeRandomAdapter(join(args.dir, `adapter-${i}`), model.spec, cfg.rank, modules, 100 + i).adapter);
  writeFileSync(stamp, JSON.stringify({ key, model: { spec: model.spec, weights: model.weights, sizeBytes: model.sizeBytes }, adapters }));
  console.error(`generated the model and adapters in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { model, adapters };
}

const copyBw = () => ops.copyBandwidth(256 * 2 ** 20, threads, 5);
const sampling: StepSampling = {
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: false,
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A batch of sequences (16-token prefill each) that `next()` advances by one decode step, timed. */
function decoder(runner: ModelRunner, slots: number[], firstBlock: number): { next: () => number } {
  const seqs: StepSequence[] = slots.map((slot, b) => ({
    tokenIds: Array.from({ length: 16 }, (_, i) => (b * 131 + i * 7) % cfg.vocab),
    startPosition: 0,
    blockTable: Array.from({ length: 8 }, (_, i) => firstBlock + b * 8 + i),
    slot,
    sampling,
  }));
  let tokens = runner.step(seqs).map((r) => r.tokenId);
  let position = 16;
  return {
    next: () => {
      const t0 = performance.now();
      const out = runner.step(seqs.map((q, b) => ({ ...q, tokenIds: [tokens[b]], startPosition: position })));
      const seconds = (performance.now() - t0) / 1000;
      tokens = out.map((r) => r.tokenId);
      position = position + 1 < 100 ? position + 1 : 16; // stay inside the 8 blocks of 16 positions
      return seconds;
    },
  };
}

const rssBefore = process.memoryUsage().rss;
const { model, adapters } = prepare();
const params = Math.round(model.sizeBytes / (cfg.dtype === 'f32' ? 4 : 2));
const makeRunner = (loraBackend: 'csgmv' | 'triton', loraSlots: number) =>
  new ModelRunner(model, {
    backend, kvNumBlocks: 160, kvBlockSize: 16, loraSlots, loraMaxRank: cfg.rank,
    loraTargetModules: loraSlots ? ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'] : [],
    loraBackend, maxLoraChunkSize: 16, numThreads: threads, loraPoolDtype: args['lora-pool-dtype'] as 'f32' | 'bf16',
  });

const base = makeRunner('csgmv', 0);
const rssLoaded = process.memoryUsage().rss;
const mem = base.memoryReport();
// Bytes a decode step must read: every weight except the embedding table (only a few rows are gathered).
const embedBytes = model.spec.tieWordEmbeddings ? 0 : model.weights.embedTokens.sizeBytes;
const stepBytes = mem.weightBytes - embedBytes;

// Batch 1: each decode step is paired with a copy-bandwidth measurement taken right before it (the bandwidth of a
// shared machine drifts from second to second); the fraction is the median over pairs.
const single = decoder(base, [-1], 0);
single.next();
const pairs: Array<{ bw: number; t: number }> = [];
for (let s = 0; s < steps; s++) pairs.push({ bw: ops.copyBandwidth(256 * 2 ** 20, threads, 1), t: single.next() });
const t1 = median(pairs.map((p) => p.t));
const copyGBs = median(pairs.map((p) => p.bw));
const fraction = median(pairs.map((p) => stepBytes / p.t / 1e9 / p.bw));
const bw1 = Math.min(...pairs.map((p) => p.bw));
const bw2 = Math.max(...pairs.map((p) => p.bw));
const rssAfterDecode = process.memoryUsage().rss;
const achieved = stepBytes / t1 / 1e9;
// Prefill throughput: one 256-token prompt (compute-bound, not bandwidth-bound).
const prefillTokens = 256;
const tp0 = performance.now();
base.step([{ tokenIds: Array.from({ length: prefillTokens }, (_, i) => (i * 37) % cfg.vocab), startPosition: 0, blockTable: Array.from({ length: 16 }, (_, i) => 140 + i), slot: -1, sampling }]);
const prefillS = (performance.now() - tp0) / 1000;

const results: Record<string, unknown> = {
  machine: backend.deviceInfo().name,
  cpuKernels: { active: isa.active, available: isa.available, features: isa.features },
  threads,
  model: { ...cfg, params, weightMiB: Number(mb(mem.weightBytes)), fileMiB: Number(mb(model.sizeBytes)) },
  copyBandwidthGBs: { median: copyGBs, min: bw1, max: bw2 },
  prefill256: { ms: prefillS * 1000, tokensPerS: prefillTokens / prefillS },
  batch1: { stepMs: t1 * 1000, tokensPerS: 1 / t1, achievedGBs: achieved, fractionOfCopy: fraction },
  rss: {
    beforeLoadMiB: Number(mb(rssBefore)),
    afterCreateMiB: Number(mb(rssLoaded)),
    afterDecodeMiB: Number(mb(rssAfterDecode)),
    kvCacheMiB: Number(mb(mem.kvCacheBytes)),
  },
};
base.destroy();

for (const loraBackend of args['skip-lora'] ? [] : (['csgmv', 'triton'] as const)) {
  const runner = makeRunner(loraBackend, 8);
  for (let i = 0; i < 8; i++) {
    const host = await runner.loadHostAdapter(adapters[i]);
    runner.copyAdapterToSlot(i, host);
    runner.freeHostAdapter(host);
  }
  // Base and LoRA batches advance in alternation, step by step, so drift hits both alike; ratio = median per pair.
  const baseBatch = decoder(runner, Array(8).fill(-1), 0);
  const loraBatch = decoder(runner, [0, 1, 2, 3, 4, 5, 6, 7], 64);
  baseBatch.next();
  loraBatch.next();
  const rounds: Array<{ tb: number; tl: number }> = [];
  for (let i = 0; i < steps; i++) rounds.push({ tb: baseBatch.next(), tl: loraBatch.next() });
  // Batch 1: one request on one adapter vs the base model (kernel-anchor: LoRA overhead at most 10%).
  const oneBase = decoder(runner, [-1], 128);
  const oneLora = decoder(runner, [0], 136);
  const singles: Array<{ tb: number; tl: number }> = [];
  for (let i = 0; i < steps; i++) singles.push({ tb: oneBase.next(), tl: oneLora.next() });
  const tb = median(rounds.map((r) => r.tb));
  const tl = median(rounds.map((r) => r.tl));
  const ratio = median(rounds.map((r) => r.tl / r.tb));
  results[`batch8_${loraBackend}`] = {
    baseStepMs: tb * 1000,
    loraStepMs: tl * 1000,
    ratio,
    batch1BaseStepMs: median(singles.map((r) => r.tb)) * 1000,
    batch1LoraStepMs: median(singles.map((r) => r.tl)) * 1000,
    batch1Ratio: median(singles.map((r) => r.tl / r.tb)),
    baseTokensPerS: 8 / tb,
    loraTokensPerS: 8 / tl,
    loraPoolMiB: Number(mb(runner.memoryReport().loraPoolBytes)),
  };
  runner.destroy();
}

if (args.json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const r = results as any;
  console.log(`machine: ${r.machine}, ${threads} threads, CPU kernels ${isa.active} (available ${isa.available.join(', ')}; ${isa.features})`);
  console.log(`model: ${cfg.numLayers} layers, hidden ${cfg.hidden}, intermediate ${cfg.intermediate}, vocab ${cfg.vocab}, ${cfg.dtype}, ${(params / 1e6).toFixed(0)}M params, ${r.model.weightMiB} MiB`);
  console.log(`copy bandwidth (read+write, ${threads} threads): median ${copyGBs.toFixed(1)} GB/s (range ${bw1.toFixed(1)}-${bw2.toFixed(1)})`);
  console.log(`batch 1 decode: ${r.batch1.stepMs.toFixed(2)} ms/step = ${r.batch1.tokensPerS.toFixed(1)} tok/s, ${achieved.toFixed(1)} GB/s = ${(100 * r.batch1.fractionOfCopy).toFixed(0)}% of copy bandwidth`);
  console.log(`prefill of ${prefillTokens} tokens: ${r.prefill256.ms.toFixed(0)} ms = ${r.prefill256.tokensPerS.toFixed(0)} tok/s`);
  for (const b of ['csgmv', 'triton']) {
    const x = r[`batch8_${b}`];
    if (!x) continue;
    console.log(`batch 8 (${b}): base ${x.baseStepMs.toFixed(2)} ms, 8 distinct rank-${cfg.rank} adapters ${x.loraStepMs.toFixed(2)} ms, ratio ${x.ratio.toFixed(3)}`);
    console.log(`batch 1 (${b}): base ${x.batch1BaseStepMs.toFixed(2)} ms, one rank-${cfg.rank} adapter ${x.batch1LoraStepMs.toFixed(2)} ms, ratio ${x.batch1Ratio.toFixed(3)}; ${args['lora-pool-dtype']} pool ${x.loraPoolMiB} MiB`);
  }
  console.log(`RSS: ${r.rss.beforeLoadMiB} MiB before, ${r.rss.afterCreateMiB} MiB after createModel, ${r.rss.afterDecodeMiB} MiB after decoding (weights ${r.model.weightMiB} MiB mapped, KV ${r.rss.kvCacheMiB} MiB)`);
}
