/**
 * Prefill GEMM microbenchmark (not a test): the four projections of the 125M preset (qkv, o, gate_up, down) at a
 * prefill of M rows, bf16 weights, on each named CPU kernel copy in alternation; prints GFLOP/s (2·M·N·K / time,
 * median of the rounds) and each copy's ratio to the first.
 *   node --import tsx bench/native/gemm.ts [--isas amx,avx512] [--rows 256] [--threads 2] [--rounds 5] [--out FILE]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadNativeTestingOps } from '../../src/binding/index.js';
import { rng, toBf16Bits } from '../../test/native/forward-random-model.js';
import { median } from './bench-model.js';

const { values: args } = parseArgs({
  options: {
    isas: { type: 'string' },
    rows: { type: 'string', default: '256' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const ops = loadNativeTestingOps();
const initial = ops.cpuKernelIsa();
const isas = args.isas ? args.isas.split(',') : initial.available;
const M = Number(args.rows);
const threads = Number(args.threads);
const shapes: Array<[string, number, number]> = [['qkv', 1280, 768], ['o', 768, 768], ['gate_up', 4096, 768], ['down', 768, 2048]];

const r = rng(3);
const results: Record<string, Record<string, number>> = {};
for (const [name, N, K] of shapes) {
  const x = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
  const w = Uint16Array.from({ length: N * K }, () => toBf16Bits((r() * 2 - 1) * 0.05));
  const seconds = new Map<string, number[]>(isas.map((i) => [i, []]));
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const isa of isas) {
      ops.selectCpuKernelIsa(isa);
      const t0 = performance.now();
      ops.gemm(x, M, w, 'bf16', N, K, threads);
      seconds.get(isa)!.push((performance.now() - t0) / 1000);
    }
  }
  results[name] = {};
  for (const isa of isas) results[name][isa] = (2 * M * N * K) / median(seconds.get(isa)!) / 1e9;
  console.log(`${name} [${M} x ${K}] x [${K} x ${N}]: ${isas.map((i) => `${i} ${results[name][i].toFixed(1)} GFLOP/s (${(results[name][i] / results[name][isas[0]]).toFixed(2)}x)`).join(', ')}`);
}
ops.selectCpuKernelIsa(initial.active);
if (args.out) writeFileSync(args.out, JSON.stringify({ rows: M, threads, features: initial.features, gflops: results }, null, 2) + '\n');
