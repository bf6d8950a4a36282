/**
 * The engine worker with the real native runner on a small random model: mixed adapters over few slots, chunked
 * prefill and continuous batching give every request exactly the tokens it gets when run alone (greedy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, type EngineInit } from '../../../src/engine/engine.js';
import type { EngineRequest, TokenUpdate } from '../../../src/engine/types.js';
import { writeRandomAdapter, writeRandomModel } from '../../native/forward-random-model.js';

const dir = mkdtempSync(join(tmpdir(), 'tslora-engine-'));
const model = writeRandomModel({ dir: join(dir, 'model'), hidden: 64, intermediate: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 96, dtype: 'f32', seed: 7, weightScale: 2 });
const adapters = {
  a: writeRandomAdapter(join(dir, 'a'), model.spec, 4, ['q_proj', 'v_proj'], 11).adapter,
  b: writeRandomAdapter(join(dir, 'b'), model.spec, 8, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], 12).adapter,
  c: writeRandomAdapter(join(dir, 'c'), model.spec, 2, ['down_proj'], 13).adapter,
};

function init(overrides: Partial<EngineInit['lora']> = {}, chunkedPrefillSize = 5): EngineInit {
  return {
    spec: model.spec,
    weights: model.weights,
    device: 'cpu',
    dtype: 'auto',
    numThreads: 1,
    tpSize: 1,
    cudaGraphMaxBs: null,
    disableCudaGraph: true,
    overlapSchedule: true, // the server's default
    contextLength: 128,
    memFractionStatic: null,
    maxRunningRequests: 32,
    chunkedPrefillSize,
    disablePrefixCache: false,
    kvBlockSize: 4,
    lora: { enabled: true, slots: 2, maxRank: 8, targetModules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'], backend: 'csgmv', chunkSize: 16, evictionPolicy: 'lru', overlapLoading: false, drainThresholdMs: 0, ...overrides },
    eosTokenIds: [],
  };
}

function request(rid: string, adapterId: string | null, prompt: number[], maxNewTokens: number): EngineRequest {
  return {
    rid, promptTokenIds: prompt, adapterId, logprobStartLen: -1, maxTotalTokens: 128,
    sampling: { temperature: 0, topP: 1, topK: -1, minP: 0, seed: 1, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, maxNewTokens, minNewTokens: 0, stopTokenIds: [], ignoreEos: true, returnLogprob: false, topLogprobsNum: 0 },
  };
}

function run(engine: Engine, req: EngineRequest): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const out: number[] = [];
    engine.submit(req, (u: TokenUpdate) => {
      out.push(...u.tokenIds);
      if (u.finish) (u.finish.type === 'abort' ? reject(new Error(u.finish.message)) : resolve(out));
    });
  });
}

const prompts = [[1, 2, 3, 4, 5, 6, 7], [9, 8], [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], [42], [3, 1, 4, 1, 5, 9, 2, 6]];
const names: Array<keyof typeof adapters | null> = ['a', 'b', null, 'c', 'a'];

for (const overlap of [false, true]) {
  test(`mixed batch over 2 slots equals solo runs (overlap loading ${overlap ? 'on' : 'off'})`, async () => {
    const engine = await Engine.start(init({ overlapLoading: overlap }));
    try {
      for (const [name, spec] of Object.entries(adapters)) await engine.loadAdapter(`id-${name}`, spec, false);
      const reqs = prompts.map((p, i) => request(`r${i}`, names[i] ? `id-${names[i]}` : null, p, 6));
      const solo: number[][] = [];
      for (const r of reqs) solo.push(await run(engine, { ...r, rid: `${r.rid}-solo` }));
      const together = await Promise.all(reqs.map((r) => run(engine, r)));
      assert.deepEqual(together, solo);
      // Different adapters really change the output (otherwise the comparison proves little).
      assert.notDeepEqual(await run(engine, request('x1', 'id-b', prompts[0], 6)), solo[0]);
      const stats = await engine.stats();
      assert.equal(stats.running, 0);
      assert.equal(stats.kvBlocksUsed - 0 >= 0, true);
      assert.ok(stats.slotsUsed <= 2);
      await engine.freeAdapter('id-a');
      const after = await engine.stats();
      assert.ok(!after.slotIds.includes('id-a'));
    } finally {
      await engine.close();
    }
  });
}

test('abort frees the request and the engine keeps serving', async () => {
  const engine = await Engine.start(init());
  try {
    let updates = 0;
    engine.submit(request('long', null, [1, 2, 3], 100), () => updates++);
    await new Promise((r) => setTimeout(r, 20));
    engine.abort('long');
    const out = await run(engine, request('next', null, [1, 2, 3], 3));
    assert.equal(out.length, 3);
    const stats = await engine.stats();
    assert.equal(stats.running + stats.waiting, 0);
  } finally {
    await engine.close();
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
