/**
 * Native CPU microbenchmark (not a test): single-stream decode LoRA cost of the CPU pool's storage dtypes side by side,
 * same model, same adapters, same process (issue 17: the int8 pool against the bf16 one).
 *   node --import tsx bench/native/pool-dtypes.ts [--preset 125m] [--ranks 16,64] [--dtypes bf16,int8] [--rounds 8]
 *     [--steps 12] [--threads 2] [--kv-cache-dtype bf16] [--dir /tmp/tslora-bench-native] [--out FILE.json]
 *     [--epilogue-min-chunk-kib N: the fused expand's GEMMs cut a chunk per N KiB of Bᵀ per thread (cpu/gemm.h
 *     setGemmEpilogueChunks), for A/B runs of that threshold in alternating processes; default: the build's]
 * One runner per (rank, pool dtype), each with the adapter in slot 0. Every round visits the runners in a rotated
 * order; on each it steps the base model (slot -1) and the adapter in alternation `steps` times: the round's LoRA cost of
 * that runner = median adapter step / median base step - 1. Reported per (rank, dtype): the median and range of the
 * rounds' costs, the adapter's bytes against the base step's (the cost's floor at the base read rate), the pool size;
 * and per round a two-thread copy bandwidth sample with the base decode's weight read rate against it.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { benchAdapters, benchModel, decoder, median, type BenchShape } from './bench-model.js';

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string', default: '125m' },
    ranks: { type: 'string', default: '16,64' },
    dtypes: { type: 'string', default: 'bf16,int8' },
    rounds: { type: 'string', default: '8' },
    steps: { type: 'string', default: '12' },
    threads: { type: 'string', default: '2' },
    'kv-cache-dtype': { type: 'string', default: 'bf16' },
    dir: { type: 'string', default: '/tmp/tslora-bench-native' },
    out: { type: 'string' },
    'epilogue-min-chunk-kib': { type: 'string' },
  },
});
if (args.preset !== '125m') throw new Error(`--preset: unknown preset '${args.preset}' (known: 125m)`);
// The synthetic 125M-class Llama of bench/native/decode.ts --preset 125m (same files under --dir).
const shape: BenchShape = { hidden: 768, intermediate: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, dtype: 'bf16', vocab: 32000 };
type PoolDtype = 'f32' | 'bf16' | 'int8';
const ranks = args.ranks.split(',').map(Number);
const dtypes = args.dtypes.split(',') as PoolDtype[];
const rounds = Number(args.rounds);
const steps = Number(args.steps);
const threads = Number(args.threads);
const ops = loadNativeTestingOps();
const backend = loadNativeBackend('cpu');
const minChunkKiB = args['epilogue-min-chunk-kib'] === undefined ? undefined : Number(args['epilogue-min-chunk-kib']);
if (minChunkKiB !== undefined) ops.setGemmEpilogueChunks(0, minChunkKiB * 1024);
const model = benchModel(args.dir, shape);

interface Variant {
  rank: number;
  dtype: PoolDtype;
  runner: ModelRunner;
  base: { next: () => number };
  lora: { next: () => number };
  costs: number[];
  baseMs: number[];
}
const variants: Variant[] = [];
for (const rank of ranks) {
  const [adapter] = benchAdapters(args.dir, model, shape, rank, 8); // the 8 of decode.ts; slot 0 holds the first
  for (const dtype of dtypes) {
    const runner = new ModelRunner(model, {
      backend, kvNumBlocks: 32, kvBlockSize: 16, loraSlots: 1, loraMaxRank: rank,
      loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend: 'csgmv', maxLoraChunkSize: 16,
      numThreads: threads, loraPoolDtype: dtype, kvCacheDtype: args['kv-cache-dtype'] as 'f32' | 'bf16',
    });
    const host = await runner.loadHostAdapter(adapter);
    runner.copyAdapterToSlot(0, host);
    runner.freeHostAdapter(host);
    variants.push({ rank, dtype, runner, base: decoder(runner, shape.vocab, [-1], 0), lora: decoder(runner, shape.vocab, [0], 8), costs: [], baseMs: [] });
  }
}
const mem = variants[0].runner.memoryReport();
const stepBytes = mem.weightBytes - model.weights.embedTokens.sizeBytes; // a decode step reads every weight but the embedding

const copy: number[] = [];
const readFraction: number[] = [];
for (let round = 0; round < rounds; round++) {
  copy.push(ops.copyBandwidth(256 * 2 ** 20, threads, 1));
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(i + round) % variants.length];
    const tb: number[] = [];
    const tl: number[] = [];
    for (let s = 0; s < steps; s++) {
      tb.push(v.base.next());
      tl.push(v.lora.next());
    }
    v.costs.push(median(tl) / median(tb) - 1);
    v.baseMs.push(median(tb) * 1000);
  }
  const baseSeconds = median(variants.map((v) => v.baseMs[round])) / 1000;
  readFraction.push(stepBytes / baseSeconds / 1e9 / copy[round]);
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const results = {
  machine: backend.deviceInfo().name,
  cpuKernels: ops.cpuKernelIsa().active,
  threads, rounds, stepsPerRound: steps, kvCacheDtype: args['kv-cache-dtype'], epilogueMinChunkKiB: minChunkKiB ?? 'default',
  model: { ...shape, weightMiB: Number((mem.weightBytes / 2 ** 20).toFixed(1)) },
  copyBandwidthGBs: { median: median(copy), min: Math.min(...copy), max: Math.max(...copy), perRound: copy },
  baseReadFractionOfCopy: { median: median(readFraction), min: Math.min(...readFraction), max: Math.max(...readFraction) },
  lora: variants.map((v) => ({
    rank: v.rank, poolDtype: v.dtype,
    costMedian: median(v.costs), costMin: Math.min(...v.costs), costMax: Math.max(...v.costs), costPerRound: v.costs,
    baseStepMsMedian: median(v.baseMs),
    adapterBytesOverBaseStep: v.runner.memoryReport().loraPoolBytes / stepBytes,
    poolMiB: Number((v.runner.memoryReport().loraPoolBytes / 2 ** 20).toFixed(2)),
  })),
};
for (const v of variants) v.runner.destroy();
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n');
console.log(`machine: ${results.machine}, ${threads} threads, CPU kernels ${results.cpuKernels}; ${rounds} rounds x ${steps} alternating base / adapter steps per runner`);
console.log(`copy bandwidth (read+write, ${threads} threads): median ${results.copyBandwidthGBs.median.toFixed(1)} GB/s (range ${results.copyBandwidthGBs.min.toFixed(1)}-${results.copyBandwidthGBs.max.toFixed(1)}); base decode reads ${pct(results.baseReadFractionOfCopy.median)} of it (range ${pct(results.baseReadFractionOfCopy.min)}-${pct(results.baseReadFractionOfCopy.max)})`);
for (const x of results.lora) {
  console.log(`r${x.rank} ${x.poolDtype.padEnd(4)}: LoRA cost ${pct(x.costMedian)} (range ${pct(x.costMin)}-${pct(x.costMax)}), base step ${x.baseStepMsMedian.toFixed(2)} ms, adapter bytes ${pct(x.adapterBytesOverBaseStep)} of the base step's, pool ${x.poolMiB} MiB`);
}
