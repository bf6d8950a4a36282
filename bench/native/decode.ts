/**
 * Native CPU microbenchmark (not a test): every issue-17 figure of the CPU engine in one run, on a synthetic Llama.
 *   node --import tsx bench/native/decode.ts [--preset 125m] [--layers 16] [--hidden 1024] [--intermediate 2816]
 *     [--kv-heads 4] [--vocab 32000] [--dtype bf16|f16|f32] [--ranks 16,64] [--steps 20] [--threads 2]
 *     [--prefill-tokens 256] [--prefill-rounds 3] [--lora-backends csgmv,triton] [--lora-pool-dtype f32|bf16|int8]
 *     [--kv-cache-dtype f32|bf16] [--isa baseline|avx2|avx512|amx] [--vs-isa avx512] [--skip-lora] [--dir /tmp/...]
 *     [--read-rate-steps N (default: --steps)] [--batch8-rounds N (default: --steps / 2, 0 = none)] [--json] [--out FILE]
 * --preset 125m: the synthetic 125M-class Llama of the llama.cpp comparison (12 layers, hidden 768, intermediate 2048,
 * 12 heads / 4 KV heads, vocab 32000, bf16). --isa forces one copy of the runtime-dispatched CPU kernels; --vs-isa
 * also times each prefill round on another copy (e.g. the avx512 FMA GEMM against the amx tiles, same build).
 * Reports, each from pairs measured in alternation (shared machines drift from second to second):
 *  - decode weight read rate: bytes of every weight but the embedding per batch-1 step / step time, as a fraction of
 *    the two-thread copy bandwidth (bytes read + written, STREAM "Copy") sampled right before each step;
 *  - prefill tok/s of one prompt, with the packed GEMM and with it switched off (the row-dot tiles of before);
 *    compare-builds.ts compares whole builds (attention and all);
 *  - LoRA cost at single-stream decode (one adapter vs the base model, per rank) and at batch 8 (8 distinct adapters);
 *  - RSS after the run against the weights plus the KV blocks actually written (the reserved cache is not touched).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { benchAdapters, benchModel, decoder, median, timePrefill, type BenchShape } from './bench-model.js';

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: '16' },
    hidden: { type: 'string', default: '1024' },
    intermediate: { type: 'string', default: '2816' },
    vocab: { type: 'string', default: '32000' },
    'kv-heads': { type: 'string' },
    dtype: { type: 'string', default: 'bf16' },
    steps: { type: 'string', default: '20' },
    'read-rate-steps': { type: 'string' },
    'batch8-rounds': { type: 'string' },
    threads: { type: 'string', default: '2' },
    ranks: { type: 'string', default: '16,64' },
    'prefill-tokens': { type: 'string', default: '256' },
    'prefill-rounds': { type: 'string', default: '3' },
    'lora-backends': { type: 'string', default: 'csgmv' },
    dir: { type: 'string', default: '/tmp/tslora-bench-native' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
    'skip-lora': { type: 'boolean', default: false },
    'lora-pool-dtype': { type: 'string', default: 'f32' },
    'kv-cache-dtype': { type: 'string', default: 'f32' },
    isa: { type: 'string' },
    'vs-isa': { type: 'string' },
    preset: { type: 'string' },
  },
});
if (args.preset === '125m') Object.assign(args, { hidden: '768', layers: '12', intermediate: '2048', 'kv-heads': '4', dtype: 'bf16' });
else if (args.preset !== undefined) throw new Error(`--preset: unknown preset '${args.preset}' (known: 125m)`);
const shape: BenchShape = {
  hidden: Number(args.hidden),
  intermediate: Number(args.intermediate),
  numLayers: Number(args.layers),
  numHeads: Number(args.hidden) / 64,
  numKvHeads: args['kv-heads'] ? Number(args['kv-heads']) : Math.max(1, Number(args.hidden) / 256),
  dtype: args.dtype as BenchShape['dtype'],
  vocab: Number(args.vocab),
};
const steps = Number(args.steps);
const threads = Number(args.threads);
const ranks = args['skip-lora'] ? [] : args.ranks.split(',').map(Number);
const ops = loadNativeTestingOps();
if (args.isa) ops.selectCpuKernelIsa(args.isa);
const isa = ops.cpuKernelIsa();
const backend = loadNativeBackend('cpu');
const mb = (b: number) => Number((b / 2 ** 20).toFixed(1));

const model = benchModel(args.dir, shape);
const rssBefore = process.memoryUsage().rss; // after the model's JSON (and a first run's generation) is in the heap
const params = Math.round(model.sizeBytes / (shape.dtype === 'f32' ? 4 : 2));
const KV_BLOCKS = 160;
const makeRunner = (loraBackend: 'csgmv' | 'triton', loraSlots: number, rank: number) =>
  new ModelRunner(model, {
    backend, kvNumBlocks: KV_BLOCKS, kvBlockSize: 16, loraSlots, loraMaxRank: rank,
    loraTargetModules: loraSlots ? ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'] : [],
    loraBackend, maxLoraChunkSize: 16, numThreads: threads, loraPoolDtype: args['lora-pool-dtype'] as 'f32' | 'bf16' | 'int8',
    kvCacheDtype: args['kv-cache-dtype'] as 'f32' | 'bf16',
  });

const base = makeRunner('csgmv', 0, 0);
const rssLoaded = process.memoryUsage().rss;
const mem = base.memoryReport();
// Bytes a decode step must read: every weight except the embedding table (only a few rows are gathered).
const embedBytes = model.spec.tieWordEmbeddings ? 0 : model.weights.embedTokens.sizeBytes;
const stepBytes = mem.weightBytes - embedBytes;

// Batch 1: each decode step paired with a copy-bandwidth sample taken right before it; fraction = median over pairs.
const single = decoder(base, shape.vocab, [-1], 0);
single.next();
const pairs: Array<{ bw: number; t: number }> = [];
const readRateSteps = Number(args['read-rate-steps'] ?? steps);
for (let s = 0; s < readRateSteps; s++) pairs.push({ bw: ops.copyBandwidth(256 * 2 ** 20, threads, 1), t: single.next() });
const t1 = median(pairs.map((p) => p.t));
const copyGBs = median(pairs.map((p) => p.bw));

// Prefill: rounds alternate the packed GEMM (default) and the row-dot tiles (packing off); ratio = median per round.
const prefillTokens = Number(args['prefill-tokens']);
const prefillBlocks = Math.ceil(prefillTokens / 16);
const packDefault = isa.packMinRows;
const vsIsa = args['vs-isa'];
const prefill: Array<{ packed: number; tiles: number; vsIsa: number }> = [];
for (let r = 0; r < Number(args['prefill-rounds']); r++) {
  ops.setGemmPackMinRows(packDefault);
  const packed = timePrefill(base, shape.vocab, prefillTokens, 8, r);
  ops.setGemmPackMinRows(0);
  const tiles = timePrefill(base, shape.vocab, prefillTokens, 8, r);
  ops.setGemmPackMinRows(packDefault);
  if (vsIsa) ops.selectCpuKernelIsa(vsIsa);
  const other = vsIsa ? timePrefill(base, shape.vocab, prefillTokens, 8, r) : NaN;
  ops.selectCpuKernelIsa(isa.active);
  prefill.push({ packed, tiles, vsIsa: other });
}
ops.setGemmPackMinRows(packDefault);
const rssAfter = process.memoryUsage().rss;
const kvBytesPerBlock = mem.kvCacheBytes / KV_BLOCKS;
const kvUsedBytes = (8 + prefillBlocks) * kvBytesPerBlock; // blocks the decoder and the prefills wrote

const results: Record<string, unknown> = {
  machine: backend.deviceInfo().name,
  cpuKernels: { active: isa.active, available: isa.available, features: isa.features, packMinRows: packDefault },
  threads,
  model: { ...shape, params, weightMiB: mb(mem.weightBytes), fileMiB: mb(model.sizeBytes) },
  copyBandwidthGBs: { median: copyGBs, min: Math.min(...pairs.map((p) => p.bw)), max: Math.max(...pairs.map((p) => p.bw)) },
  batch1: {
    stepMs: t1 * 1000, tokensPerS: 1 / t1, readGBs: stepBytes / t1 / 1e9,
    readFractionOfCopy: median(pairs.map((p) => stepBytes / p.t / 1e9 / p.bw)),
  },
  prefill: {
    tokens: prefillTokens,
    packedTokensPerS: prefillTokens / median(prefill.map((p) => p.packed)),
    tilesTokensPerS: prefillTokens / median(prefill.map((p) => p.tiles)),
    packedSpeedup: median(prefill.map((p) => p.tiles / p.packed)),
    ...(vsIsa && {
      vsIsa: { isa: vsIsa, tokensPerS: prefillTokens / median(prefill.map((p) => p.vsIsa)), activeSpeedup: median(prefill.map((p) => p.vsIsa / p.packed)) },
    }),
  },
  rss: {
    beforeLoadMiB: mb(rssBefore), afterCreateMiB: mb(rssLoaded), afterRunMiB: mb(rssAfter),
    kvReservedMiB: mb(mem.kvCacheBytes), kvUsedMiB: mb(kvUsedBytes), kvCacheDtype: args['kv-cache-dtype'],
    // What the run added to the process, against the weights + the KV it wrote (target <= 1.1).
    addedOverWeightsPlusKvUsed: (rssAfter - rssBefore) / (mem.weightBytes + kvUsedBytes),
  },
};
base.destroy();

const lora: Record<string, unknown> = {};
const batch8Rounds = Number(args['batch8-rounds'] ?? Math.max(3, steps >> 1));
for (const rank of ranks) {
  const adapters = benchAdapters(args.dir, model, shape, rank, 8);
  for (const loraBackend of args['lora-backends'].split(',') as Array<'csgmv' | 'triton'>) {
    const runner = makeRunner(loraBackend, 8, rank);
    for (let i = 0; i < (batch8Rounds > 0 ? 8 : 1); i++) {  // batch 1 uses slot 0 only
      const host = await runner.loadHostAdapter(adapters[i]);
      runner.copyAdapterToSlot(i, host);
      runner.freeHostAdapter(host);
    }
    // Single stream: one adapter vs the base model, stepped in alternation (LoRA cost = ratio - 1): shrink and
    // expand fused into the base GEMM (default, tl), only the shrink fused (ts), neither (tu).
    const oneBase = decoder(runner, shape.vocab, [-1], 128);
    const oneLora = decoder(runner, shape.vocab, [0], 136);
    // Builds from before the fused expand (compare-builds, a baseline checkout) lack its switch: ts is then NaN.
    const setExpandFusion = 'setLoraExpandFusion' in ops ? (on: boolean) => ops.setLoraExpandFusion(on) : undefined;
    // On the avx512 / amx kernel sets the expand has two copies (lora/cpu_expand.h): the default path is also
    // timed on the other one (to).
    const wideDefault = 'setLoraWideExpand' in ops && ops.setLoraWideExpand();
    const twoCopies = ['avx512', 'amx'].includes(isa.active) && 'setLoraWideExpand' in ops && ops.setLoraWideExpand(true);
    if (twoCopies) ops.setLoraWideExpand(wideDefault);
    // Builds whose GEMM can choose the fused expand's chunks per thread from its bytes (cpu/gemm.h; those have
    // setGemmChunks) also time the default path with the other choice (tc): chosen if the default is a fixed count,
    // else the fixed 4 per thread of before.
    const chosenChunks = 'setGemmChunks' in ops;
    const chunkDefault = chosenChunks ? ops.setGemmEpilogueChunks(0) : 4;
    if (chosenChunks) ops.setGemmEpilogueChunks(chunkDefault);
    const otherChunks = chunkDefault === 0 ? 4 : 0;
    const singles: Array<{ tb: number; tl: number; ts: number; tu: number; to: number; tc: number }> = [];
    for (let i = 0; i < steps; i++) {
      const tb = oneBase.next();
      const tl = oneLora.next();
      if (twoCopies) ops.setLoraWideExpand(!wideDefault);
      const to = twoCopies ? oneLora.next() : NaN;
      if (twoCopies) ops.setLoraWideExpand(wideDefault);
      if (chosenChunks) ops.setGemmEpilogueChunks(otherChunks);
      const tc = chosenChunks ? oneLora.next() : NaN;
      if (chosenChunks) ops.setGemmEpilogueChunks(chunkDefault);
      setExpandFusion?.(false);
      const ts = setExpandFusion ? oneLora.next() : NaN;
      ops.setLoraShrinkFusion(false);
      const tu = oneLora.next();
      ops.setLoraShrinkFusion(true);
      setExpandFusion?.(true);
      singles.push({ tb, tl, ts, tu, to, tc });
    }
    // Batch 8: 8 distinct adapters vs 8 base rows.
    const baseBatch = decoder(runner, shape.vocab, Array(8).fill(-1), 0);
    const loraBatch = decoder(runner, shape.vocab, [0, 1, 2, 3, 4, 5, 6, 7], 64);
    const rounds: Array<{ tb: number; tl: number }> = [];
    for (let i = 0; i < batch8Rounds; i++) rounds.push({ tb: baseBatch.next(), tl: loraBatch.next() });
    lora[`r${rank}_${loraBackend}`] = {
      batch1BaseStepMs: median(singles.map((r) => r.tb)) * 1000,
      batch1LoraStepMs: median(singles.map((r) => r.tl)) * 1000,
      batch1LoraCost: median(singles.map((r) => r.tl / r.tb)) - 1,
      batch1LoraCostShrinkFusedOnly: median(singles.map((r) => r.ts / r.tb)) - 1,
      batch1LoraCostUnfused: median(singles.map((r) => r.tu / r.tb)) - 1,
      expandCopy: wideDefault ? 'avx512' : '8-lane',
      batch1LoraCostOtherExpand: median(singles.map((r) => r.to / r.tb)) - 1,
      // GEMM chunks per thread with the fused expand (0 = chosen from its bytes): the default's and the other's.
      gemmEpilogueChunks: chunkDefault,
      batch1LoraCostOtherChunks: median(singles.map((r) => r.tc / r.tb)) - 1,
      // Share of the LoRA step spent reading the adapter's bytes at the base step's rate: the cost's floor.
      batch1LoraBytesOverBase: runner.memoryReport().loraPoolBytes / 8 / stepBytes,
      batch8BaseStepMs: median(rounds.map((r) => r.tb)) * 1000,
      batch8LoraStepMs: median(rounds.map((r) => r.tl)) * 1000,
      batch8LoraCost: median(rounds.map((r) => r.tl / r.tb)) - 1,
      loraPoolMiB: mb(runner.memoryReport().loraPoolBytes),
    };
    runner.destroy();
  }
}
results.lora = { poolDtype: args['lora-pool-dtype'], ...lora };

if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n');
if (args.json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const r = results as any;
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const wideNote = (x: any) => (Number.isNaN(x.batch1LoraCostOtherExpand) ? '' : `${x.expandCopy === 'avx512' ? '8-lane' : 'AVX-512'} expand ${pct(x.batch1LoraCostOtherExpand)}, `) +
    (Number.isNaN(x.batch1LoraCostOtherChunks) ? '' : `${x.gemmEpilogueChunks === 0 ? '4 GEMM chunks per thread' : 'GEMM chunks chosen from the expand bytes'} ${pct(x.batch1LoraCostOtherChunks)}, `);
  console.log(`machine: ${r.machine}, ${threads} threads, CPU kernels ${isa.active} (available ${isa.available.join(', ')}; ${isa.features})`);
  console.log(`model: ${shape.numLayers} layers, hidden ${shape.hidden}, intermediate ${shape.intermediate}, vocab ${shape.vocab}, ${shape.dtype}, ${(params / 1e6).toFixed(0)}M params, ${r.model.weightMiB} MiB`);
  console.log(`copy bandwidth (read+write, ${threads} threads): median ${copyGBs.toFixed(1)} GB/s (range ${r.copyBandwidthGBs.min.toFixed(1)}-${r.copyBandwidthGBs.max.toFixed(1)})`);
  console.log(`batch 1 decode: ${r.batch1.stepMs.toFixed(2)} ms/step = ${r.batch1.tokensPerS.toFixed(1)} tok/s, weight read ${r.batch1.readGBs.toFixed(1)} GB/s = ${pct(r.batch1.readFractionOfCopy)} of copy bandwidth`);
  if (prefill.length === 0) console.log('prefill: not measured (--prefill-rounds 0)');
  else console.log(`prefill of ${prefillTokens} tokens: ${r.prefill.packedTokensPerS.toFixed(0)} tok/s (packed GEMM), ${r.prefill.tilesTokensPerS.toFixed(0)} tok/s (packing off): ${r.prefill.packedSpeedup.toFixed(2)}x`);
  if (r.prefill.vsIsa) console.log(`prefill on ${r.prefill.vsIsa.isa}: ${r.prefill.vsIsa.tokensPerS.toFixed(0)} tok/s; ${isa.active} is ${r.prefill.vsIsa.activeSpeedup.toFixed(2)}x that`);
  for (const [key, x] of Object.entries(lora) as Array<[string, any]>) {
    console.log(`LoRA ${key}: batch 1 ${x.batch1BaseStepMs.toFixed(2)} -> ${x.batch1LoraStepMs.toFixed(2)} ms (cost ${pct(x.batch1LoraCost)} with the ${x.expandCopy} expand, adapter bytes ${pct(x.batch1LoraBytesOverBase)} of the base step's; expand not fused ${pct(x.batch1LoraCostShrinkFusedOnly)}, ${wideNote(x)}nothing fused ${pct(x.batch1LoraCostUnfused)}), batch 8 distinct ${x.batch8BaseStepMs.toFixed(2)} -> ${x.batch8LoraStepMs.toFixed(2)} ms (cost ${pct(x.batch8LoraCost)}); ${args['lora-pool-dtype']} pool ${x.loraPoolMiB} MiB`);
  }
  console.log(`RSS: ${r.rss.beforeLoadMiB} MiB before, ${r.rss.afterCreateMiB} after createModel, ${r.rss.afterRunMiB} after the run; added / (weights ${r.model.weightMiB} + KV written ${r.rss.kvUsedMiB} MiB) = ${r.rss.addedOverWeightsPlusKvUsed.toFixed(2)} (KV reserved ${r.rss.kvReservedMiB} MiB, ${r.rss.kvCacheDtype})`);
}
