/**
 * CUDA engine microbenchmark (not a test): decode step time and tokens/s at batch 1 / 8 / 64 for the base model,
 * one adapter shared by every row, and 8 distinct adapters, on both LoRA strategies; plus one 8 × 512-token prefill.
 *   node --import tsx bench/cuda/decode.ts --model DIR --adapters DIR [--steps 30] [--json FILE]
 *     [--backends csgmv,triton] [--batches 1,8,64] [--cuda-graph-max-bs N]   (N > 0: decode steps replay CUDA graphs)
 *     [--scenarios base,shared,distinct] [--no-prefill] [--bandwidth FILE] [--label TEXT]
 * DIR comes from `tslora synth model --shape llama-3.2-1b --out DIR`; --adapters from `tslora synth adapters --model DIR
 * --count 8 --rank 16 --targets all --out ADIR` (ADIR/lora-0 … lora-7). Times are wall-clock per runner.step(), i.e.
 * the whole step as the server sees it: JS step building, the GPU forward, the logits copy and host-side sampling.
 * With --bandwidth (the JSON of bench/cuda/bandwidth.cu, measured on the same GPU in the same run) each decode row also
 * reports its memory floor (memory-floor.ts) and the fraction of it the step reached; without it they are null.
 * --label names the configuration in the JSON (e.g. "before" / "after" of an env switch).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadNativeBackend } from '../../src/binding/index.js';
import { loadModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { type DecodeScenario, fillAdapterSlots, prefillSequences, readBenchAdapters, scenarioSequences } from './decode-scenario.js';
import { decodeStepFloorMs, readMeasuredBandwidth } from './memory-floor.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    adapters: { type: 'string' },
    steps: { type: 'string', default: '30' },
    backends: { type: 'string', default: 'csgmv,triton' },
    batches: { type: 'string', default: '1,8,64' },
    'cuda-graph-max-bs': { type: 'string', default: '0' },
    json: { type: 'string' },
    scenarios: { type: 'string', default: 'base,shared,distinct' },
    'no-prefill': { type: 'boolean', default: false },
    bandwidth: { type: 'string' },
    label: { type: 'string', default: '' },
  },
});
if (!args.model || !args.adapters) throw new Error('usage: --model DIR --adapters DIR');
const steps = Number(args.steps);
const graphMaxBs = Number(args['cuda-graph-max-bs']);
const bandwidth = args.bandwidth ? readMeasuredBandwidth(args.bandwidth) : null;
const backend = loadNativeBackend('cuda');
/** The TSLORA_CUDA_* switches this process ran with (the before/after of a comparison). */
const cudaEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('TSLORA_CUDA_')));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const loaded = await loadModel(args.model);
const adapters = await readBenchAdapters(args.adapters, loaded.spec);
const rank = Math.max(...adapters.map((a) => a.rank));
const PROMPT = 32;
const BLOCK = 16;
const BLOCKS_PER_SEQ = 8; // 128 positions: prompt + warm-up + timed steps stay inside
const info = backend.deviceInfo();
const results: Record<string, unknown>[] = [];

for (const loraBackend of args.backends!.split(',') as Array<'csgmv' | 'triton'>) {
  const runner = new ModelRunner(loaded, {
    backend, kvNumBlocks: 64 * BLOCKS_PER_SEQ + 64, kvBlockSize: BLOCK, loraSlots: 8, loraMaxRank: rank,
    loraTargetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], loraBackend, maxLoraChunkSize: 16, numThreads: 1,
    cudaGraphMaxBatchSize: graphMaxBs,
  });
  await fillAdapterSlots(runner, adapters);
  for (const batch of args.batches!.split(',').map(Number)) {
    for (const scenario of args.scenarios!.split(',') as DecodeScenario[]) {
      const seqs = scenarioSequences({ batch, scenario, promptTokens: PROMPT, blocksPerSeq: BLOCKS_PER_SEQ, vocabSize: loaded.spec.vocabSize });
      let tokens = runner.step(seqs).map((r) => r.tokenId);
      const times: number[] = [];
      for (let s = 0; s < steps + 3; s++) {
        const t0 = performance.now();
        const out = runner.step(seqs.map((q, b) => ({ ...q, tokenIds: [tokens[b]], startPosition: PROMPT + s })));
        const ms = performance.now() - t0;
        if (s >= 3) times.push(ms);
        tokens = out.map((r) => r.tokenId);
      }
      const stepMs = median(times);
      // The JS part of a step (flattening the batch into typed arrays), timed on its own.
      const builds: number[] = [];
      for (let s = 0; s < 10; s++) {
        const t0 = performance.now();
        runner.buildStepInput(seqs.map((q, b) => ({ ...q, tokenIds: [tokens[b]], startPosition: PROMPT + s })));
        builds.push(performance.now() - t0);
      }
      const buildMs = median(builds);
      const distinctAdapters = scenario === 'base' ? 0 : scenario === 'shared' ? 1 : Math.min(8, batch);
      // The timed steps run at contexts PROMPT+1 … PROMPT+steps+3: the median sits in the middle.
      const floorMs = bandwidth
        ? decodeStepFloorMs({ spec: loaded.spec, batch, contextTokens: PROMPT + 3 + steps / 2, distinctAdapters, rank }, bandwidth.floorBytesPerS)
        : null;
      const row = { loraBackend, graphMaxBs, batch, scenario, stepMs, jsBuildMs: buildMs, tokensPerS: (batch * 1000) / stepMs, floorMs, floorFraction: floorMs === null ? null : floorMs / stepMs };
      results.push(row);
      const floorText = floorMs === null ? 'floor not measured' : `floor ${floorMs.toFixed(2)} ms = ${(100 * floorMs / stepMs).toFixed(0)} %`;
      console.log(`decode ${args.label ? `${args.label} ` : ''}${loraBackend.padEnd(6)} graphs ${graphMaxBs > 0 ? 'on ' : 'off'} batch ${String(batch).padStart(2)} ${scenario.padEnd(8)} step ${stepMs.toFixed(2)} ms (JS ${buildMs.toFixed(2)})  ${row.tokensPerS.toFixed(0)} tok/s  ${floorText}`);
    }
  }
  if (args['no-prefill']) {
    console.log(`memory ${JSON.stringify(runner.memoryReport())}`);
    runner.destroy();
    continue;
  }
  // Prefill: 8 sequences × 512 tokens, 8 distinct adapters.
  const prefill = prefillSequences({ prompts: 8, tokens: 512, blockSize: BLOCK, withAdapters: true, vocabSize: loaded.spec.vocabSize });
  runner.step(prefill);
  const pt: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    runner.step(prefill);
    pt.push(performance.now() - t0);
  }
  const prefillMs = median(pt);
  results.push({ loraBackend, prefill: '8x512 distinct', stepMs: prefillMs, tokensPerS: (4096 * 1000) / prefillMs });
  console.log(`prefill ${loraBackend} 8 x 512 tokens, 8 adapters: ${prefillMs.toFixed(1)} ms  ${((4096 * 1000) / prefillMs).toFixed(0)} tok/s`);
  console.log(`memory ${JSON.stringify(runner.memoryReport())}`);
  runner.destroy();
}
const report = { gpu: info.name, label: args.label, env: cudaEnv(), bandwidth, model: args.model, graphMaxBs, spec: { layers: loaded.spec.numLayers, hidden: loaded.spec.hiddenSize, vocab: loaded.spec.vocabSize }, rank, steps, results };
if (args.json) writeFileSync(args.json, JSON.stringify(report, null, 2));
