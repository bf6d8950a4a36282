/**
 * Where a single-stream LoRA decode step's time goes on the CPU (not a test): base steps and fused LoRA steps
 * (shrink riding the base GEMM, expand in its epilogue) in alternation, with the GEMM threads' time per kind of range
 * summed over threads (cpu/gemm.h GemmProfile): the base projections, the fused shrink (A rows), the epilogue's wait
 * for the shrink, the epilogue itself (the expand over Bᵀ). Each as GB/s per thread, so the LoRA parts' rate per
 * byte can be held against the base GEMV's in the same steps.
 * Also each step's time outside its GEMMs (wall minus the calling thread's time inside them).
 *   node --import tsx bench/native/lora-profile.ts [--ranks 16,64] [--steps 20] [--threads 2] [--dir /tmp/...] [--out FILE]
 *     [--min-chunk-kib 8,32: more thresholds of the epilogue's chunk choice to time] [--generate: only write the model
 *     and the ranks' adapters into --dir, without loading the addon] [--schedules: the plain-GEMM schedules and
 *     prefetch flags as variants too (below)]
 *     [--pool-dtype bf16|int8|f32 (default bf16)]
 * The 125M preset of decode.ts (same --dir: the same cached model and adapters), csgmv. Variants, in
 * alternation with the defaults: the other expand copy where there are two (avx512 / amx kernel sets), GEMM chunks
 * per thread chosen from the expand's bytes or a fixed 4 (whichever is not the default) or 1 (gemm.h
 * setGemmEpilogueChunks: one fused-expand call per chunk), base steps with 1 chunk per thread. With --schedules:
 * base steps with plain GEMMs on owned ranges (gemm.h setGemmOwnedRanges: 4 / 8 pieces per thread), LoRA steps with
 * every GEMM on them (the fused expand's GEMMs too), base steps without (or, where the build's default is off, with)
 * the far L2 prefetch of the weights (setGemmPrefetchFlags), LoRA steps with that switched on the base weights and
 * the fused shrink's A, and LoRA steps whose shrink prefetches past its A rows' end (the other setting of that flag).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { benchAdapters, benchModel, decoder, median, type BenchShape } from './bench-model.js';

const { values: args } = parseArgs({
  options: {
    ranks: { type: 'string', default: '16,64' },
    steps: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    dir: { type: 'string', default: '/tmp/tslora-bench-native' },
    out: { type: 'string' },
    generate: { type: 'boolean', default: false },
    'min-chunk-kib': { type: 'string', default: '' },
    schedules: { type: 'boolean', default: false },
    'pool-dtype': { type: 'string', default: 'bf16' },
  },
});
const shape: BenchShape = { hidden: 768, intermediate: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, dtype: 'bf16', vocab: 32000 };
const steps = Number(args.steps);
const threads = Number(args.threads);
const ranks = args.ranks.split(',').map(Number);
const model = benchModel(args.dir, shape);
if (args.generate) {
  for (const rank of ranks) benchAdapters(args.dir, model, shape, rank, 8);
  process.exit(0);
}
const ops = loadNativeTestingOps();
const isa = ops.cpuKernelIsa();
const backend = loadNativeBackend('cpu');

type Profile = ReturnType<typeof ops.gemmProfile>;
const fields = ['baseNs', 'baseBytes', 'ownNs', 'ownBytes', 'awaitNs', 'epilogueNs', 'wallNs'] as const;
const add = (a: Profile, b: Profile): Profile => Object.fromEntries(fields.map((f) => [f, a[f] + b[f]])) as Profile;
const zero = (): Profile => Object.fromEntries(fields.map((f) => [f, 0])) as Profile;

const twoCopies = ['avx512', 'amx'].includes(isa.active) && ops.setLoraWideExpand(true);
ops.selectCpuKernelIsa(isa.active);  // the expand copy's default again
const wideDefault = ops.setLoraWideExpand();
const defaultMinChunkKiB = 512;  // cpu/gemm-chunks.cpp: gMinEpilogueChunkBytes
const chunkDefault = ops.setGemmEpilogueChunks(0);  // 0: chosen from the expand's bytes
ops.setGemmEpilogueChunks(chunkDefault);
// The step variants, each set up before its step and undone after it: LoRA steps on the other expand copy where
// there are two, with a fixed number of GEMM chunks per thread (4: every GEMM's count before the chunks were chosen
// from the epilogue's bytes; 1) or other thresholds of that choice (--min-chunk-kib); base steps with 1 chunk per
// thread (whether the base step gains from fewer chunks too).
type Variant = {
  name: string; base?: boolean; wide?: boolean; chunks?: number; minChunkKiB?: number; plainChunks?: number;
  owned?: 0 | 1 | 2; baseFlags?: number; ownFlags?: number;
};
const FAR = 1, STOP_AT_END = 2;  // cpu/simd.h kPrefetchFar, kPrefetchStopAtEnd
const ownedDefault = ops.setGemmOwnedRanges(0) as 0 | 1 | 2;
ops.setGemmOwnedRanges(ownedDefault);
const [baseFlagsDefault, ownFlagsDefault] = ops.setGemmPrefetchFlags(0, 0);
ops.setGemmPrefetchFlags(baseFlagsDefault, ownFlagsDefault);
const schedules: Variant[] = !args.schedules ? [] : [
  { name: `base, ${ownedDefault ? 'chunks claimed in turn' : 'owned ranges'}`, base: true, owned: ownedDefault ? 0 : 1 },
  { name: 'base, owned ranges x8', base: true, owned: 1, plainChunks: 8 },
  { name: `LoRA, ${ownedDefault === 2 ? 'chunks claimed in turn' : 'owned ranges'}`, owned: ownedDefault === 2 ? 0 : 2 },
  { name: `base, ${baseFlagsDefault & FAR ? 'no ' : ''}far L2`, base: true, baseFlags: baseFlagsDefault ^ FAR },
  { name: `${baseFlagsDefault & FAR ? 'no ' : ''}far L2 base + shrink`, baseFlags: baseFlagsDefault ^ FAR, ownFlags: ownFlagsDefault ^ FAR },
  { name: `shrink prefetch ${ownFlagsDefault & STOP_AT_END ? 'past' : 'stops at'} its end`, ownFlags: ownFlagsDefault ^ STOP_AT_END },
];
const variants: Variant[] = [
  { name: 'default' },
  ...(twoCopies ? [{ name: `${wideDefault ? '8-lane' : 'avx512'} expand`, wide: !wideDefault }] : []),
  ...(chunkDefault !== 0 ? [{ name: 'chunks chosen', chunks: 0, minChunkKiB: defaultMinChunkKiB }] : []),
  ...(chunkDefault !== 4 ? [{ name: '4 chunks', chunks: 4 }] : []),
  { name: '1 chunk', chunks: 1 },
  ...args['min-chunk-kib'].split(',').filter(Boolean).map((kib) => ({ name: `chunks from ${kib} KiB`, minChunkKiB: Number(kib) })),
  { name: 'base, 1 chunk', base: true, plainChunks: 1, owned: 0 },
  ...schedules,
];
const setUp = (v: Variant) => {
  if (v.wide !== undefined) ops.setLoraWideExpand(v.wide);
  if (v.chunks !== undefined || v.minChunkKiB) ops.setGemmEpilogueChunks(v.chunks ?? 0, (v.minChunkKiB ?? defaultMinChunkKiB) * 1024);
  if (v.plainChunks) ops.setGemmChunks(v.plainChunks);
  if (v.owned !== undefined) ops.setGemmOwnedRanges(v.owned);
  if (v.baseFlags !== undefined || v.ownFlags !== undefined) ops.setGemmPrefetchFlags(v.baseFlags ?? baseFlagsDefault, v.ownFlags ?? ownFlagsDefault);
};
const undo = () => {
  ops.setLoraWideExpand(wideDefault);
  ops.setGemmEpilogueChunks(chunkDefault, defaultMinChunkKiB * 1024);
  ops.setGemmChunks(4);
  ops.setGemmOwnedRanges(ownedDefault);
  ops.setGemmPrefetchFlags(baseFlagsDefault, ownFlagsDefault);
};
const results: Record<string, unknown> = { isa: isa.active, features: isa.features, threads, steps, copyBandwidthGBs: ops.copyBandwidth(256 * 2 ** 20, threads, 3) };
for (const rank of ranks) {
  const runner = new ModelRunner(model, {
    backend, kvNumBlocks: 160, kvBlockSize: 16, loraSlots: 8, loraMaxRank: rank,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend: 'csgmv', maxLoraChunkSize: 16,
    numThreads: threads, loraPoolDtype: args['pool-dtype'] as 'f32' | 'bf16' | 'int8', kvCacheDtype: 'f32',
  });
  const host = await runner.loadHostAdapter(benchAdapters(args.dir, model, shape, rank, 8)[0]);
  runner.copyAdapterToSlot(0, host);
  runner.freeHostAdapter(host);
  const slotBytes = runner.memoryReport().loraPoolBytes / 8;
  const base = decoder(runner, shape.vocab, [-1], 128);
  const lora = decoder(runner, shape.vocab, [0], 136);
  const sums = [zero(), ...variants.map(zero)];
  const walls: number[][] = [[], ...variants.map(() => [])];
  ops.gemmProfile(true);
  for (let i = 0; i < steps; i++) {
    ops.gemmProfile(true);
    walls[0].push(base.next());
    sums[0] = add(sums[0], ops.gemmProfile(true));
    variants.forEach((variant, v) => {
      setUp(variant);
      walls[v + 1].push((variant.base ? base : lora).next());
      sums[v + 1] = add(sums[v + 1], ops.gemmProfile(true));
      undo();
    });
  }
  ops.gemmProfile(false);
  undo();
  runner.destroy();
  const perStep = (p: Profile) => Object.fromEntries(fields.map((f) => [f, p[f] / steps])) as Profile;
  const b = perStep(sums[0]);
  const gbs = (bytes: number, ns: number) => (ns > 0 ? bytes / ns : NaN);
  // A step's wall time outside its GEMMs (attention, norms, the host side of the step; µs per step, means).
  const outsideUs = (w: number[], p: Profile) => (w.reduce((a, t) => a + t, 0) / w.length) * 1e6 - p.wallNs / 1e3;
  const out: Record<string, unknown> = {
    slotBytes, baseStepMs: median(walls[0]) * 1e3,
    stepSeconds: Object.fromEntries([['base', walls[0]], ...variants.map(({ name }, v) => [name, walls[v + 1]])]),
    base: { ...b, gemmGBsPerThread: gbs(b.baseBytes, b.baseNs), outsideGemmUs: outsideUs(walls[0], b) },
  };
  variants.forEach(({ name }, v) => {
    const l = perStep(sums[v + 1]);
    const expandBytes = slotBytes - l.ownBytes;
    out[name] = {
      ...l,
      stepMs: median(walls[v + 1]) * 1e3,
      cost: median(walls[v + 1].map((t, i) => t / walls[0][i])) - 1,
      baseGBsPerThread: gbs(l.baseBytes, l.baseNs),
      gemmWallUs: l.wallNs / 1e3,
      outsideGemmUs: outsideUs(walls[v + 1], l),
      shrinkGBsPerThread: gbs(l.ownBytes, l.ownNs),
      expandBytes,
      expandGBsPerThread: gbs(expandBytes, l.epilogueNs),
      // Thread time (all threads) the LoRA step's GEMMs took beyond the base step's, and its parts, in µs.
      extraThreadUs: {
        total: (l.baseNs + l.ownNs + l.awaitNs + l.epilogueNs - b.baseNs) / 1e3,
        baseSlower: (l.baseNs - b.baseNs) / 1e3,
        shrink: l.ownNs / 1e3,
        shrinkAtBaseRate: l.ownBytes / gbs(b.baseBytes, b.baseNs) / 1e3,
        await: l.awaitNs / 1e3,
        expand: l.epilogueNs / 1e3,
        expandAtBaseRate: expandBytes / gbs(b.baseBytes, b.baseNs) / 1e3,
      },
    };
  });
  results[`r${rank}`] = out;
  const f1 = (x: number) => x.toFixed(1);
  console.log(`r${rank}: base step ${f1(out.baseStepMs as number)} ms, base GEMV ${(out.base as any).gemmGBsPerThread.toFixed(2)} GB/s per thread, adapter ${(slotBytes / 2 ** 20).toFixed(1)} MiB`);
  for (const { name, base: baseVariant } of variants) {
    const x = out[name] as any, e = x.extraThreadUs;
    const walls = `GEMM wall ${f1(x.gemmWallUs - b.wallNs / 1e3)} µs, outside ${f1(x.outsideGemmUs - (out.base as any).outsideGemmUs)} µs more than base`;
    if (baseVariant) {
      console.log(`  ${name}: ${f1(100 * x.cost)} % against base, base GEMV ${x.baseGBsPerThread.toFixed(2)} GB/s per thread (thread-µs per step ${f1(e.baseSlower)}); ${walls}`);
      continue;
    }
    console.log(`  ${name}: cost ${f1(100 * x.cost)} %, GB/s per thread: base ${x.baseGBsPerThread.toFixed(2)}, shrink ${x.shrinkGBsPerThread.toFixed(2)}, expand ${x.expandGBsPerThread.toFixed(2)}; extra thread-µs per step ${f1(e.total)} = base slower ${f1(e.baseSlower)} + shrink ${f1(e.shrink)} (at base rate ${f1(e.shrinkAtBaseRate)}) + await ${f1(e.await)} + expand ${f1(e.expand)} (at base rate ${f1(e.expandAtBaseRate)}); ${walls}`);
  }
}
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n');
