// The embedded demo model (models/demo) on the tslora CPU engine: greedy decoding of fresh inputs for the base
// model's task (echo) and each adapter's task, everything in the same mixed batches, compared with the exact
// answers and with the PyTorch + PEFT outputs stored in models/demo/reference.json.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { readAdapter } from '../../src/engine/model/adapter.js';
import { loadModel, type LoadedModel } from '../../src/engine/model/load-model.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import type { AdapterSpec, LoraTargetModule } from '../../src/engine/model/types.js';
import { demoSamples, TASK_NAMES, type DemoSample } from './demo-tasks.js';

const DEMO_DIR = join(import.meta.dirname, '..', '..', 'models', 'demo');
const ADAPTERS = ['last_word', 'spell', 'reverse', 'caesar', 'upper', 'add'];
const BLOCK_SIZE = 16;
const MAX_NEW_TOKENS = 48;
const FRESH_SEED = 424242; // neither training nor reference.json used it
const FRESH_PER_TASK = 40;

interface ReferenceFile {
  seed: number;
  n_per_task: number;
  tasks: string[];
  accuracy: { pytorch_teacher_forced: Record<string, number>; pytorch_mixed_greedy: Record<string, number> };
  rows: Array<{ task: string; prompt: string; expected: string; pytorch: string }>;
}
const reference = JSON.parse(readFileSync(join(DEMO_DIR, 'reference.json'), 'utf8')) as ReferenceFile;

const greedy = (promptTokenIds: number[], outputTokenIds: number[]): StepSampling => ({
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: outputTokenIds.length, repetitionPenalty: 1,
  frequencyPenalty: 0, presencePenalty: 0, promptTokenIds, outputTokenIds, topLogprobsNum: 0, wantLogprob: false,
});

let model: LoadedModel;
const adapterSpecs = new Map<string, AdapterSpec>();

before(async () => {
  model = await loadModel(DEMO_DIR);
  for (const name of ADAPTERS) {
    const { adapter } = await readAdapter(join(DEMO_DIR, 'adapters', name), model.spec, { maxRank: null, targetModules: null, strict: true }, name);
    adapterSpecs.set(name, adapter);
  }
});

async function makeRunner(loraBackend: 'csgmv' | 'triton', numBlocks: number): Promise<{ runner: ModelRunner; slotOf: Map<string, number> }> {
  const targets = [...new Set([...adapterSpecs.values()].flatMap((a) => a.targetModules))] as LoraTargetModule[];
  const runner = new ModelRunner(model, {
    backend: loadNativeBackend('cpu'), kvNumBlocks: numBlocks, kvBlockSize: BLOCK_SIZE, loraSlots: ADAPTERS.length,
    loraMaxRank: Math.max(...[...adapterSpecs.values()].map((a) => a.rank)), loraTargetModules: targets, loraBackend,
    maxLoraChunkSize: 16, numThreads: 2,
  });
  const slotOf = new Map<string, number>();
  for (const [slot, name] of ADAPTERS.entries()) {
    const host = await runner.loadHostAdapter(adapterSpecs.get(name)!);
    runner.copyAdapterToSlot(slot, host);
    runner.freeHostAdapter(host);
    slotOf.set(name, slot);
  }
  return { runner, slotOf };
}

interface Live {
  prompt: number[];
  output: number[];
  slot: number;
  blocks: number[];
  done: boolean;
}

/** Greedy decoding of every sample at once: one prefill step with all rows, then decode steps over the rows
 * still running. Returns the decoded answers, and the slots present in the first (prefill) batch. */
function generateAll(runner: ModelRunner, slotOf: Map<string, number>, samples: DemoSample[]): { texts: string[]; firstBatchSlots: Set<number> } {
  const eos = new Set(model.spec.eosTokenIds);
  let nextBlock = 0;
  const live: Live[] = samples.map((s) => {
    const prompt = model.tokenizer.encode(s.prompt);
    const numBlocks = Math.ceil((prompt.length + MAX_NEW_TOKENS) / BLOCK_SIZE);
    const blocks = Array.from({ length: numBlocks }, () => nextBlock++);
    return { prompt, output: [], slot: s.task === 'echo' ? -1 : slotOf.get(s.task)!, blocks, done: false };
  });
  assert.ok(nextBlock <= runner.options.kvNumBlocks, `needs ${nextBlock} KV blocks`);
  const firstBatchSlots = new Set(live.map((l) => l.slot));
  let first = true;
  for (let step = 0; step <= MAX_NEW_TOKENS; step++) {
    const running = live.filter((l) => !l.done);
    if (running.length === 0) break;
    const seqs: StepSequence[] = running.map((l) => ({
      tokenIds: first ? l.prompt : [l.output[l.output.length - 1]],
      startPosition: first ? 0 : l.prompt.length + l.output.length - 1,
      blockTable: l.blocks,
      slot: l.slot,
      sampling: greedy(l.prompt, l.output),
    }));
    const results = runner.step(seqs);
    results.forEach((r, i) => {
      const l = running[i];
      if (eos.has(r.tokenId)) l.done = true;
      else l.output.push(r.tokenId);
      if (l.output.length >= MAX_NEW_TOKENS) l.done = true;
    });
    first = false;
  }
  return { texts: live.map((l) => model.tokenizer.decode(l.output, { skipSpecialTokens: true })), firstBatchSlots };
}

function accuracyByTask(samples: DemoSample[], texts: string[]): Record<string, number> {
  const acc: Record<string, number> = {};
  for (const task of TASK_NAMES) {
    const idx = samples.map((s, i) => (s.task === task ? i : -1)).filter((i) => i >= 0);
    acc[task] = idx.filter((i) => texts[i] === samples[i].expected).length / idx.length;
  }
  return acc;
}

describe('demo model on the CPU engine', () => {
  let runner: ModelRunner;
  let slotOf: Map<string, number>;
  after(() => runner?.destroy());

  it('loads as a Llama with bf16 weights, a char tokenizer and six heterogeneous adapters', async () => {
    assert.equal(model.spec.architecture, 'llama');
    assert.equal(model.spec.weightDtype, 'bf16');
    assert.deepEqual(model.tokenizer.encode('ab=c'), [1, 69, 70, 33, 71]);
    const ranks = ADAPTERS.map((n) => adapterSpecs.get(n)!.rank);
    assert.deepEqual(ranks, [4, 8, 32, 24, 16, 64]);
    assert.deepEqual(adapterSpecs.get('upper')!.targetModules, ['gate_up_proj', 'down_proj']);
    assert.deepEqual(adapterSpecs.get('reverse')!.targetModules, ['qkv_proj', 'o_proj']);
    ({ runner, slotOf } = await makeRunner('csgmv', 1800));
  });

  it('reference inputs: every row gets its own task answer, matching PyTorch + PEFT', (t) => {
    const samples = TASK_NAMES.flatMap((t) => demoSamples(t, reference.n_per_task, reference.seed));
    assert.deepEqual(samples.map((s) => s.prompt), reference.rows.map((r) => r.prompt), 'TS task mirror reproduces reference.json');
    const { texts, firstBatchSlots } = generateAll(runner, slotOf, samples);
    assert.equal(firstBatchSlots.size, ADAPTERS.length + 1, 'one batch mixes all adapters and the base');
    const acc = accuracyByTask(samples, texts);
    const mismatches = reference.rows.map((r, i) => ({ ...r, tslora: texts[i] })).filter((r) => r.tslora !== r.pytorch);
    t.diagnostic(`tslora exact match ${JSON.stringify(acc)}; rows differing from PyTorch: ${mismatches.length}/${texts.length}`);
    for (const task of TASK_NAMES) {
      assert.ok(acc[task] >= 0.95, `${task}: exact match ${acc[task]} < 0.95`);
      assert.ok(acc[task] >= reference.accuracy.pytorch_mixed_greedy[task] - 0.03, `${task}: ${acc[task]} vs PyTorch ${reference.accuracy.pytorch_mixed_greedy[task]}`);
    }
    assert.ok(mismatches.length <= Math.floor(reference.rows.length * 0.02), `rows differing from PyTorch: ${JSON.stringify(mismatches.slice(0, 5))}`);
  });

  it('fresh inputs (another seed): each task >= 95% exact match', (t) => {
    const samples = TASK_NAMES.flatMap((t) => demoSamples(t, FRESH_PER_TASK, FRESH_SEED));
    // Interleave tasks so neighbouring rows use different adapters.
    const order = samples.map((_, i) => i).sort((a, b) => (a % FRESH_PER_TASK) - (b % FRESH_PER_TASK) || a - b);
    const mixed = order.map((i) => samples[i]);
    const { texts } = generateAll(runner, slotOf, mixed);
    const acc = accuracyByTask(mixed, texts);
    t.diagnostic(`tslora exact match ${JSON.stringify(acc)}`);
    for (const task of TASK_NAMES) assert.ok(acc[task] >= 0.95, `${task}: exact match ${acc[task]} (${JSON.stringify(acc)})`);
  });

  it('the triton-style kernel path gives the same answers on a small mixed batch', async () => {
    const small = TASK_NAMES.flatMap((t) => demoSamples(t, 4, reference.seed));
    const other = await makeRunner('triton', 160);
    try {
      const a = generateAll(runner, slotOf, small).texts;
      const b = generateAll(other.runner, other.slotOf, small).texts;
      assert.deepEqual(b, a);
      assert.deepEqual(a, small.map((s) => s.expected));
    } finally {
      other.runner.destroy();
    }
  });
});
