/**
 * The side expand's A/B in ONE process (a benchmark, not a test; issue #12, session 18): one ModelRunner of the same
 * model per variant, each constructed under its own environment (the engine reads TSLORA_CUDA_LORA_SIDE_EXPAND* at model
 * construction): "off" (=0), "on" (=1) and with --nopdl "on-nopdl" (=1, TSLORA_CUDA_LORA_SIDE_EXPAND_PDL=0), the same
 * adapters in all. Per (batch, scenario) all prefill the same prompts and warm up (graph capture), then `rounds` rounds
 * of `steps` timed decode steps per variant, the order rotating every round, so that the machine's drift hits every
 * variant alike. Reports per configuration the median of the rounds' median step times, their range, the ratio to
 * "off", and the LoRA cost over the same variant's base step.
 * --variants 'name:KEY=V,KEY=V;name2:KEY=V' replaces the variants (any TSLORA_CUDA_* switch read at model construction,
 * e.g. the side stream's priority; @adapters=DIR and @targets=a+b give a variant its own adapters and LoRA target
 * modules, ab-variants.ts); the first one is the reference the ratios are taken to.
 *   node --import tsx bench/cuda/side-expand-ab.ts --model DIR --adapters DIR [--batches 1,32,64]
 *     [--scenarios base,shared,distinct] [--rounds 7] [--steps 10] [--cuda-graph-max-bs 128] [--backend csgmv]
 *     [--nopdl] [--variants SPEC] [--json FILE] [--markdown] [--device cuda|cpu] [--prefill 8x512]
 * --prefill NxT adds two rows after the decode ones: one prefill step of N prompts of T tokens without adapters
 * ("prefill base") and with adapter b % 8 on prompt b ("prefill distinct"), each round timing --prefill-steps (3) such
 * steps per variant in the same rotating order (e.g. the store-first prefill LoRA, TSLORA_CUDA_LORA_STORE_FIRST=1).
 * --scenarios '' leaves the decode rows out.
 * DIR / ADIR as for bench/cuda/decode.ts (`tslora synth model`, `tslora synth adapters --count 8 --rank 16`). Times are
 * wall-clock per runner.step() (the step as the server sees it). Needs GPU memory for one copy of the model per variant.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadNativeBackend } from '../../src/binding/index.js';
import { AB_TARGET_MODULES, type Variants, constructUnderVariantEnv, parseVariants } from './ab-variants.js';
import { median } from './decode-median.js';
import { type DecodeScenario, fillAdapterSlots, parsePrefill, prefillSequences, readBenchAdapters, scenarioSequences } from './decode-scenario.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    adapters: { type: 'string' },
    batches: { type: 'string', default: '1,32,64' },
    scenarios: { type: 'string', default: 'base,shared,distinct' },
    rounds: { type: 'string', default: '7' },
    steps: { type: 'string', default: '10' },
    'cuda-graph-max-bs': { type: 'string', default: '128' },
    backend: { type: 'string', default: 'csgmv' },
    json: { type: 'string' },
    markdown: { type: 'boolean', default: false },
    nopdl: { type: 'boolean', default: false },
    variants: { type: 'string' },
    device: { type: 'string', default: 'cuda' },
    prefill: { type: 'string' },
    'prefill-steps': { type: 'string', default: '3' },
  },
});
if (!args.model || !args.adapters) throw new Error('usage: --model DIR --adapters DIR');
const rounds = Number(args.rounds), steps = Number(args.steps), graphMaxBs = Number(args['cuda-graph-max-bs']);
// --device cpu runs the same A/B on the CPU engine (a check of the script itself; the CUDA switches do nothing there).
if (args.device !== 'cuda' && args.device !== 'cpu') throw new Error(`--device: expected cuda or cpu, got ${args.device}`);
const backend = loadNativeBackend(args.device);

const loaded = await loadModel(args.model);
const PROMPT = 32, BLOCK = 16, BLOCKS_PER_SEQ = Math.ceil((PROMPT + 4 + rounds * steps + 3) / BLOCK);
const maxBatch = Math.max(...args.batches!.split(',').map(Number));
const prefillShape = parsePrefill(args.prefill);
const prefillBlocks = prefillShape ? prefillShape.prompts * Math.ceil(prefillShape.tokens / BLOCK) : 0;

// Each variant's environment, set while its runner is constructed (the native model reads it then).
const variants: Variants = args.variants ? parseVariants(args.variants) : {
  off: { env: { TSLORA_CUDA_LORA_SIDE_EXPAND: '0' } },
  on: { env: { TSLORA_CUDA_LORA_SIDE_EXPAND: '1', TSLORA_CUDA_LORA_SIDE_EXPAND_PDL: '1' } },
  ...(args.nopdl ? { 'on-nopdl': { env: { TSLORA_CUDA_LORA_SIDE_EXPAND: '1', TSLORA_CUDA_LORA_SIDE_EXPAND_PDL: '0' } } } : {}),
};
// The adapters the variants load (read once per directory; --adapters only where a variant has no @adapters); the
// pools' maximum rank covers them all.
const adapterDirs = new Set(Object.values(variants).map((v) => v.adapters ?? args.adapters!));
const adaptersByDir = new Map(await Promise.all([...adapterDirs].map(async (dir) => [dir, await readBenchAdapters(dir, loaded.spec)] as const)));
const rank = Math.max(...[...adaptersByDir.values()].flat().map((a) => a.rank));
const sides = Object.keys(variants);
const reference = sides[0];
const runners = new Map<string, ModelRunner>();
for (const side of sides) {
  // Each variant's model under its own switches only (the engine reads them at construction), never an earlier one's.
  const runner = await constructUnderVariantEnv(variants, side, () => new ModelRunner(loaded, {
    backend, kvNumBlocks: Math.max(maxBatch * BLOCKS_PER_SEQ, prefillBlocks) + 16, kvBlockSize: BLOCK, loraSlots: 8, loraMaxRank: rank,
    loraTargetModules: variants[side].targets ?? AB_TARGET_MODULES, loraBackend: args.backend as 'csgmv' | 'triton',
    maxLoraChunkSize: 16, numThreads: 1, cudaGraphMaxBatchSize: graphMaxBs,
  }));
  await fillAdapterSlots(runner, adaptersByDir.get(variants[side].adapters ?? args.adapters)!);
  runners.set(side, runner);
}

interface Row { batch: number; scenario: string; ms: Record<string, number[]> }
const results: Row[] = [];
/** One row: `warmSteps` untimed steps per variant, then `rounds` rounds of `steps` timed ones per variant (each round's
 * median), the variants' order rotating every round so that the machine's drift hits every variant alike. */
function measureRow(o: { batch: number; scenario: string; label: string; warmSteps: number; steps: number }, run: (side: string, n: number) => number[]): void {
  for (const side of sides) run(side, o.warmSteps);
  const row: Row = { batch: o.batch, scenario: o.scenario, ms: Object.fromEntries(sides.map((side) => [side, [] as number[]])) };
  for (let r = 0; r < rounds; r++) {
    const order = [...sides.slice(r % sides.length), ...sides.slice(0, r % sides.length)];
    for (const side of order) row.ms[side].push(median(run(side, o.steps)));
  }
  results.push(row);
  console.log(`${o.label}: ${sides.map((side) => `${side} ${median(row.ms[side]).toFixed(3)} ms`).join(', ')}`);
}
const decodeScenarios = args.scenarios ? (args.scenarios.split(',') as DecodeScenario[]) : [];
for (const batch of args.batches!.split(',').map(Number)) {
  for (const scenario of decodeScenarios) {
    const seqs = scenarioSequences({ batch, scenario, promptTokens: PROMPT, blocksPerSeq: BLOCKS_PER_SEQ, vocabSize: loaded.spec.vocabSize });
    const state = new Map(sides.map((side) => [side, { tokens: runners.get(side)!.step(seqs).map((r) => r.tokenId), position: PROMPT }]));
    const run = (side: string, n: number): number[] => {
      const st = state.get(side)!;
      const times: number[] = [];
      for (let s = 0; s < n; s++) {
        const t0 = performance.now();
        const out = runners.get(side)!.step(seqs.map((q, b) => ({ ...q, tokenIds: [st.tokens[b]], startPosition: st.position })));
        times.push(performance.now() - t0);
        st.tokens = out.map((r) => r.tokenId);
        st.position++;
      }
      return times;
    };
    measureRow({ batch, scenario, label: `batch ${batch} ${scenario}`, warmSteps: 3, steps }, run);  // warm-up: graph capture, workspace sizing
  }
}
if (prefillShape) {
  const { prompts, tokens } = prefillShape, prefillSteps = Number(args['prefill-steps']);
  for (const scenario of ['base', 'distinct'] as const) {
    const seqs = prefillSequences({ prompts, tokens, blockSize: BLOCK, withAdapters: scenario === 'distinct', vocabSize: loaded.spec.vocabSize });
    const run = (side: string, n: number): number[] => {
      const times: number[] = [];
      for (let s = 0; s < n; s++) {
        const t0 = performance.now();
        runners.get(side)!.step(seqs);
        times.push(performance.now() - t0);
      }
      return times;
    };
    // warm-up: workspace sizing, cuBLAS heuristics
    measureRow({ batch: prompts, scenario: `prefill ${scenario}`, label: `prefill ${prompts} x ${tokens} ${scenario}`, warmSteps: 1, steps: prefillSteps }, run);
  }
}
for (const runner of runners.values()) runner.destroy();

// The table: medians over rounds, ranges, ratio to the reference (the first variant), LoRA cost over the same variant's base step.
const stat = (xs: number[]) => ({ med: median(xs), lo: Math.min(...xs), hi: Math.max(...xs) });
const fmt = (xs: number[]) => `${stat(xs).med.toFixed(3)} (${stat(xs).lo.toFixed(3)}-${stat(xs).hi.toFixed(3)})`;
const cost = (row: Row, side: string) => {
  const baseScenario = row.scenario.startsWith('prefill') ? 'prefill base' : 'base';
  const base = results.find((r) => r.batch === row.batch && r.scenario === baseScenario);
  if (!base || row.scenario === baseScenario) return '';
  const ms = median(row.ms[side]) - median(base.ms[side]);
  return `${ms.toFixed(3)} ms, ${((1000 * ms) / row.batch).toFixed(1)} µs/row, ${((100 * ms) / median(base.ms[side])).toFixed(1)} %`;
};
const info = backend.deviceInfo();
const others = sides.filter((side) => side !== reference);
const head = ['batch', 'scenario', ...sides.map((side) => `${side} ms (range)`), ...others.map((side) => `${side} / ${reference}`),
  ...sides.map((side) => `LoRA cost ${side}`)];
const rows = results.map((r) => [String(r.batch), r.scenario, ...sides.map((side) => fmt(r.ms[side])),
  ...others.map((side) => (median(r.ms[side]) / median(r.ms[reference])).toFixed(3)), ...sides.map((side) => cost(r, side))]);
console.log(`\n${info.name}: ${args.backend}, graphs ${graphMaxBs > 0 ? `on (max batch ${graphMaxBs})` : 'off'}, ${rounds} rounds x ${steps} steps, variants ${sides.join(' / ')} in rotating order`);
if (args.markdown) console.log([`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n'));
else console.log([head.join(' | '), ...rows.map((r) => r.join(' | '))].join('\n'));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('TSLORA_CUDA_')));
if (args.json)
  writeFileSync(args.json, JSON.stringify({ gpu: info.name, backend: args.backend, graphMaxBs, rounds, steps, rank, env, variants, model: args.model, results }, null, 2));
