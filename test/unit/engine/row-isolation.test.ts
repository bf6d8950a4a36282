/**
 * Issue 13 item 2: a request the native step rejects (here a temperature that is infinite as a float32, which the
 * HTTP schema now refuses but the engine must survive anyway) fails alone; the other rows of the same steps finish
 * with exactly the tokens they get when run alone. Real native runner on a small random model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, type EngineInit } from '../../../src/engine/engine.js';
import type { EngineRequest, TokenUpdate } from '../../../src/engine/types.js';
import { writeRandomModel } from '../../native/forward-random-model.js';

const dir = mkdtempSync(join(tmpdir(), 'tslora-isolation-'));
const model = writeRandomModel({ dir: join(dir, 'model'), hidden: 64, intermediate: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 96, dtype: 'f32', seed: 5, weightScale: 2 });

const init: EngineInit = {
  spec: model.spec, weights: model.weights, device: 'cpu', dtype: 'auto', numThreads: 1, tpSize: 1, cudaGraphMaxBs: null,
  disableCudaGraph: true, overlapSchedule: false, contextLength: 128, memFractionStatic: null, maxRunningRequests: 32, chunkedPrefillSize: 64,
  disablePrefixCache: false, kvBlockSize: 4,
  lora: { enabled: false, slots: 1, maxRank: 0, targetModules: [], backend: 'csgmv', chunkSize: 16, evictionPolicy: 'lru', overlapLoading: false, drainThresholdMs: 0 },
  eosTokenIds: [],
};

function request(rid: string, prompt: number[], sampling: Partial<EngineRequest['sampling']> = {}): EngineRequest {
  return {
    rid, promptTokenIds: prompt, adapterId: null, logprobStartLen: -1, maxTotalTokens: 128,
    sampling: { temperature: 0, topP: 1, topK: -1, minP: 0, seed: 1, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, maxNewTokens: 8, minNewTokens: 0, stopTokenIds: [], ignoreEos: true, returnLogprob: false, topLogprobsNum: 0, ...sampling },
  };
}

function run(engine: Engine, req: EngineRequest): Promise<{ tokens: number[]; finish: TokenUpdate['finish'] }> {
  return new Promise((resolve) => {
    const tokens: number[] = [];
    engine.submit(req, (u) => {
      tokens.push(...u.tokenIds);
      if (u.finish) resolve({ tokens, finish: u.finish });
    });
  });
}

for (const overlapSchedule of [false, true])
test(`a row the engine rejects fails alone; the rest of the step completes (overlap scheduling ${overlapSchedule ? 'on' : 'off'})`, async () => {
  // on: the failing step was launched, the step after it too; it is dropped and the failed one re-run row by row
  const engine = await Engine.start({ ...init, overlapSchedule });
  try {
    const prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10], [11, 12]];
    const solo = [];
    for (const [i, p] of prompts.entries()) solo.push(await run(engine, request(`solo${i}`, p)));
    const poisoned = [
      request('bad-temperature', [3, 3, 3], { temperature: 1e308 }),
      request('bad-top-p', [2, 2], { topP: 5e-324 }),
      request('bad-penalty', [1, 1], { repetitionPenalty: 5e-324 }),
    ];
    const together = await Promise.all([...prompts.map((p, i) => run(engine, request(`r${i}`, p))), ...poisoned.map((r) => run(engine, r))]);
    for (let i = 0; i < prompts.length; i++) {
      assert.deepEqual(together[i].finish, { type: 'length', length: 8 }, `request ${i}: ${JSON.stringify(together[i].finish)}`);
      assert.deepEqual(together[i].tokens, solo[i].tokens);
    }
    for (const bad of together.slice(prompts.length)) {
      assert.equal(bad.finish?.type, 'abort');
      assert.match((bad.finish as { message: string }).message, /rejected this request.*(temperature|topP|repetitionPenalty)/);
    }
    assert.equal((await run(engine, request('after', prompts[0]))).tokens.join(), solo[0].tokens.join());
  } finally {
    await engine.close();
  }
});
