/**
 * CPU slot-load microbenchmark (not a test): the time an adapter takes to enter the host tier (loadHostAdapter:
 * map, validate, convert; on the libuv worker) and the time of one slot load (copyAdapterToSlot, synchronous, on the
 * caller's thread: what the step loop pays), for rank-16 and rank-64 adapters over all seven projections of the
 * 125M preset (12 layers, hidden 768, intermediate 2048, 12 heads / 4 KV heads, vocab 32000), with the fp32, bf16
 * and int8 pools, TP 1 and 2, next to this machine's copy bandwidth (bytes read + written) measured in the same run.
 *   node --import tsx bench/native/slot-load.ts [--loads 20] [--ranks 16,64] [--tp 1,2] [--dir /tmp/...] [--json]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { AdapterSpec, LoraModuleName } from '../../src/engine/model/types.js';
import { writeRandomAdapter, writeRandomModel, type RandomModel } from '../../test/native/forward-random-model.js';

const { values: args } = parseArgs({
  options: {
    loads: { type: 'string', default: '20' },
    ranks: { type: 'string', default: '16,64' },
    tp: { type: 'string', default: '1,2' },
    dir: { type: 'string', default: '/tmp/tslora-bench-slot-load' },
    json: { type: 'boolean', default: false },
  },
});
const cfg = { hidden: 768, numLayers: 12, intermediate: 2048, numHeads: 12, numKvHeads: 4, vocab: 32000, dtype: 'bf16' as const };
const ranks = args.ranks.split(',').map(Number);
const tpSizes = args.tp.split(',').map(Number);
const loads = Number(args.loads);
const backend = loadNativeBackend('cpu');
const ops = loadNativeTestingOps();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function prepare(): { model: RandomModel; adapters: Map<number, AdapterSpec> } {
  const stamp = join(args.dir, 'bench.json');
  const key = JSON.stringify({ cfg, ranks });
  if (existsSync(stamp)) {
    const saved = JSON.parse(readFileSync(stamp, 'utf8'));
    if (saved.key === key) return { model: { ...saved.model, values: new Map() }, adapters: new Map(saved.adapters) };
  }
  const model = writeRandomModel({ dir: join(args.dir, 'model'), ...cfg, seed: 7, weightScale: 1 });
  const modules: LoraModuleName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const adapters = new Map(ranks.map((r): [number, AdapterSpec] => [r, writeRandomAdapter(join(args.dir, `adapter-r${r}`), model.spec, r, modules, 200 + r).adapter]));
  writeFileSync(stamp, JSON.stringify({ key, model: { spec: model.spec, weights: model.weights, sizeBytes: model.sizeBytes }, adapters: [...adapters] }));
  return { model, adapters };
}

const { model, adapters } = prepare();
const rows: Array<Record<string, number | string>> = [];
const copyGBps = ops.copyBandwidth(256 * 2 ** 20, 1, 5);
for (const tpSize of tpSizes) {
  for (const loraPoolDtype of ['f32', 'bf16', 'int8'] as const) {
    const runner = new ModelRunner(model, {
      backend, kvNumBlocks: 4, kvBlockSize: 16, loraSlots: 2, loraMaxRank: Math.max(...ranks),
      loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend: 'csgmv', maxLoraChunkSize: 16,
      numThreads: 2, tpSize, loraPoolDtype,
    });
    try {
      for (const rank of ranks) {
        const t0 = performance.now();
        const host = await runner.loadHostAdapter(adapters.get(rank)!);
        const entryMs = performance.now() - t0;
        const times: number[] = [];
        for (let i = 0; i < loads; i++) {
          const t = performance.now();
          runner.copyAdapterToSlot(i % 2, host);
          times.push(performance.now() - t);
        }
        const hostBytes = runner.hostAdapterSizeBytes(host);
        const slotLoadMs = median(times);
        rows.push({ tpSize, loraPoolDtype, rank, hostBytes, entryMs, slotLoadMs, slotLoadGBps: (2 * hostBytes) / (slotLoadMs / 1000) / 1e9 });
        runner.freeHostAdapter(host);
      }
    } finally {
      runner.destroy();
    }
  }
}
if (args.json) console.log(JSON.stringify({ copyGBps, rows }));
else {
  console.log(`copy bandwidth (1 thread, read + write): ${copyGBps.toFixed(1)} GB/s`);
  console.log('tp  pool  rank  host MiB  host-tier entry ms  slot load ms (median of ' + loads + ')  GB/s (r+w of host bytes)');
  for (const r of rows)
    console.log(`${r.tpSize}   ${r.loraPoolDtype}  ${String(r.rank).padStart(4)}  ${((r.hostBytes as number) / 2 ** 20).toFixed(1).padStart(8)}  ${(r.entryMs as number).toFixed(1).padStart(18)}  ${(r.slotLoadMs as number).toFixed(2).padStart(12)}  ${(r.slotLoadGBps as number).toFixed(1)}`);
}
