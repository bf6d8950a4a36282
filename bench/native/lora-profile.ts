/**
 * Where a single-stream LoRA decode step's time goes on the CPU (not a test): base steps and fused LoRA steps
 * (shrink riding the base GEMM, expand in its epilogue) in alternation, with the GEMM threads' time per kind of range
 * summed over threads (cpu/gemm.h GemmProfile): the base projections, the fused shrink (A rows), the epilogue's wait
 * for the shrink, the epilogue itself (the expand over Bᵀ). Each as GB/s per thread, so the LoRA parts' rate per
 * byte can be held against the base GEMV's in the same steps.
 *   node --import tsx bench/native/lora-profile.ts [--ranks 16,64] [--steps 20] [--threads 2] [--dir /tmp/...] [--out FILE]
 *     [--generate: only write the model and the ranks' adapters into --dir, without loading the addon]
 * The 125M preset of decode.ts (same --dir: the same cached model and adapters), bf16 pool, csgmv. Where the
 * expand has an AVX-512 copy (avx512 / amx kernel sets), LoRA steps alternate it with the 8-lane copy; and with 2
 * and 1 GEMM chunks per thread instead of 4 (gemm.h setGemmEpilogueChunks: one fused-expand call per chunk).
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
const fields = ['baseNs', 'baseBytes', 'ownNs', 'ownBytes', 'awaitNs', 'epilogueNs'] as const;
const add = (a: Profile, b: Profile): Profile => Object.fromEntries(fields.map((f) => [f, a[f] + b[f]])) as Profile;
const zero = (): Profile => Object.fromEntries(fields.map((f) => [f, 0])) as Profile;

const wideCopy = ['avx512', 'amx'].includes(isa.active) && ops.setLoraWideExpand(true);
ops.selectCpuKernelIsa(isa.active);  // the expand copy's default again
const defaultChunks = Number(process.env.TSLORA_GEMM_EPILOGUE_CHUNKS ?? 4);
// The LoRA step variants, each set up before its step and undone after it: the expand copies where there are two,
// and fewer GEMM chunks per thread (one fused-expand call per chunk).
const variants: Array<{ name: string; wide?: boolean; chunks?: number }> = wideCopy
  ? [{ name: 'avx512 expand', wide: true }, { name: '8-lane expand', wide: false }, { name: 'avx512 expand, 2 chunks', wide: true, chunks: 2 }, { name: 'avx512 expand, 1 chunk', wide: true, chunks: 1 }]
  : [{ name: 'default' }, { name: '2 chunks', chunks: 2 }, { name: '1 chunk', chunks: 1 }];
const results: Record<string, unknown> = { isa: isa.active, features: isa.features, threads, steps, copyBandwidthGBs: ops.copyBandwidth(256 * 2 ** 20, threads, 3) };
for (const rank of ranks) {
  const runner = new ModelRunner(model, {
    backend, kvNumBlocks: 160, kvBlockSize: 16, loraSlots: 8, loraMaxRank: rank,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend: 'csgmv', maxLoraChunkSize: 16,
    numThreads: threads, loraPoolDtype: 'bf16', kvCacheDtype: 'f32',
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
      if (variant.wide !== undefined) ops.setLoraWideExpand(variant.wide);
      if (variant.chunks) ops.setGemmEpilogueChunks(variant.chunks);
      walls[v + 1].push(lora.next());
      sums[v + 1] = add(sums[v + 1], ops.gemmProfile(true));
      ops.setGemmEpilogueChunks(defaultChunks);
    });
  }
  ops.gemmProfile(false);
  ops.selectCpuKernelIsa(isa.active);
  runner.destroy();
  const perStep = (p: Profile) => Object.fromEntries(fields.map((f) => [f, p[f] / steps])) as Profile;
  const b = perStep(sums[0]);
  const gbs = (bytes: number, ns: number) => (ns > 0 ? bytes / ns : NaN);
  const out: Record<string, unknown> = {
    slotBytes, baseStepMs: median(walls[0]) * 1e3,
    base: { ...b, gemmGBsPerThread: gbs(b.baseBytes, b.baseNs) },
  };
  variants.forEach(({ name }, v) => {
    const l = perStep(sums[v + 1]);
    const expandBytes = slotBytes - l.ownBytes;
    out[name] = {
      ...l,
      stepMs: median(walls[v + 1]) * 1e3,
      cost: median(walls[v + 1].map((t, i) => t / walls[0][i])) - 1,
      baseGBsPerThread: gbs(l.baseBytes, l.baseNs),
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
  for (const { name } of variants) {
    const x = out[name] as any, e = x.extraThreadUs;
    console.log(`  ${name}: cost ${f1(100 * x.cost)} %, GB/s per thread: base ${x.baseGBsPerThread.toFixed(2)}, shrink ${x.shrinkGBsPerThread.toFixed(2)}, expand ${x.expandGBsPerThread.toFixed(2)}; extra thread-µs per step ${f1(e.total)} = base slower ${f1(e.baseSlower)} + shrink ${f1(e.shrink)} (at base rate ${f1(e.shrinkAtBaseRate)}) + await ${f1(e.await)} + expand ${f1(e.expand)} (at base rate ${f1(e.expandAtBaseRate)})`);
  }
}
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n');
