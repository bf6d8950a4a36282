/**
 * Overlap scheduling's lag logic (src/engine/scheduler/lagged-step.ts) against the deterministic fake runner: step
 * N+1 is launched before step N is processed, and the outputs, finishes and KV accounting are those of the
 * synchronous scheduler.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvCacheManager } from '../../../src/engine/kv/kv-cache.js';
import { Scheduler, type SchedulerOptions } from '../../../src/engine/scheduler/scheduler.js';
import type { EngineRequest, TokenUpdate } from '../../../src/engine/types.js';
import { expectedOutput } from './fake-runner.js';
import { LaggedFakeRunner } from './lagged-fake-runner.js';

function makeScheduler(overlapSchedule: boolean, overrides: Partial<SchedulerOptions> = {}) {
  const runner = new LaggedFakeRunner(2);
  const scheduler = new Scheduler<string>(runner, {
    numSlots: 2, loraEnabled: true, evictionPolicy: 'lru', maxRunningRequests: 64, chunkedPrefillSize: 3, overlapLoading: false,
    drainThresholdMs: 0, eosTokenIds: [], kv: new KvCacheManager(64, 4, true), now: () => 0, overlapSchedule, ...overrides,
  });
  for (const id of ['a', 'b', 'c']) scheduler.addAdapter(id, id, false);
  return { scheduler, runner };
}

function request(rid: string, adapterId: string | null, prompt: number[], maxNewTokens: number, extra: Partial<EngineRequest['sampling']> = {}): EngineRequest {
  return {
    rid, promptTokenIds: prompt, adapterId, logprobStartLen: -1, maxTotalTokens: 4096,
    sampling: {
      temperature: 0, topP: 1, topK: -1, minP: 0, seed: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0,
      maxNewTokens, minNewTokens: 0, stopTokenIds: [], ignoreEos: false, returnLogprob: false, topLogprobsNum: 0, ...extra,
    },
  };
}

function run(scheduler: Scheduler<string>, onStep: (step: number) => void = () => {}) {
  const outputs = new Map<string, number[]>();
  const finishes = new Map<string, TokenUpdate['finish']>();
  for (let step = 0; scheduler.hasWork(); step++) {
    if (step > 10_000) throw new Error('did not finish');
    onStep(step);
    for (const u of scheduler.step()) {
      outputs.set(u.rid, [...(outputs.get(u.rid) ?? []), ...u.tokenIds]);
      if (u.finish) finishes.set(u.rid, u.finish);
    }
  }
  return { outputs, finishes };
}

const mixed = () => [
  request('r0', 'a', [1, 2, 3, 4, 5], 6),
  request('r1', 'b', [7, 8], 4),
  request('r2', null, [9, 10, 11], 5),
  request('r3', 'c', [1, 2, 3, 4, 5, 6, 7], 3),
  request('r4', 'a', [4, 4], 1),
];

test('overlap on: every request equals its solo run, rows take step N tokens by reference, no extra row past a count finish, KV all free', () => {
  const { scheduler, runner } = makeScheduler(true);
  for (const r of mixed()) assert.equal(scheduler.submit(r), null);
  const { outputs, finishes } = run(scheduler);
  for (const r of mixed()) {
    assert.deepEqual(outputs.get(r.rid), expectedOutput(r.adapterId, r.promptTokenIds, r.sampling.maxNewTokens), r.rid);
    assert.deepEqual(finishes.get(r.rid), { type: 'length', length: r.sampling.maxNewTokens });
  }
  assert.ok(runner.references > 0 && runner.overlapped > 0, `references ${runner.references}, overlapped ${runner.overlapped}`);
  // Every sampled row produced a kept token: a request ending by count never got a row after its last token.
  const sampledRows = runner.steps.flat().filter((s) => s.sampling !== null).length;
  assert.equal(sampledRows, mixed().reduce((n, r) => n + r.sampling.maxNewTokens, 0));
  assert.equal(scheduler.kv.pool.usedBlocks(), 0);
  assert.equal(scheduler.stepsInFlight, 0);
});

test('overlap on vs off: the same outputs with EOS and stop-id finishes; a token-decided finish costs one dropped row', () => {
  const outcome = (overlap: boolean) => {
    // token 3 + h % 50: pick EOS / stop ids that the rule produces early for some requests
    const { scheduler, runner } = makeScheduler(overlap, { eosTokenIds: [expectedOutput('a', [1, 2, 3, 4, 5], 3)[2]] });
    const stop = expectedOutput(null, [9, 10, 11], 5)[1];
    const reqs = [...mixed().slice(0, 2), request('r2', null, [9, 10, 11], 5, { stopTokenIds: [stop] }), ...mixed().slice(3)];
    for (const r of reqs) scheduler.submit(r);
    const result = run(scheduler);
    assert.equal(scheduler.kv.pool.usedBlocks(), 0, `KV all free (overlap ${overlap})`);
    return { ...result, rows: runner.steps.flat().filter((s) => s.sampling !== null).length };
  };
  const off = outcome(false);
  const on = outcome(true);
  assert.deepEqual([...on.outputs].sort(), [...off.outputs].sort());
  assert.deepEqual([...on.finishes].sort(), [...off.finishes].sort());
  assert.equal(off.finishes.get('r0')?.type, 'stop');
  assert.equal(off.finishes.get('r2')?.type, 'stop');
  assert.ok(on.rows >= off.rows + 1 && on.rows <= off.rows + 2, `rows on ${on.rows}, off ${off.rows}`);
});

test('penalties fall back to synchronous steps: their rows never take a token by reference', () => {
  const { scheduler, runner } = makeScheduler(true);
  scheduler.submit(request('pen', 'a', [1, 2, 3], 6, { repetitionPenalty: 1.3 }));
  scheduler.submit(request('plain', 'b', [5, 6], 6));
  // the history a penalty row carries, as it stands when the row is launched
  const historyAtLaunch: Array<[known: number, generated: number]> = [];
  const launch = runner.launch.bind(runner);
  runner.launch = (seqs) => {
    for (const s of seqs) if (s.sampling?.repetitionPenalty === 1.3) historyAtLaunch.push([s.sampling.outputTokenIds.length, s.sampling.generatedCount]);
    launch(seqs);
  };
  const { outputs } = run(scheduler);
  assert.deepEqual(outputs.get('pen'), expectedOutput('a', [1, 2, 3], 6));
  assert.deepEqual(outputs.get('plain'), expectedOutput('b', [5, 6], 6));
  const penRows = runner.steps.flat().filter((s) => s.sampling?.repetitionPenalty === 1.3);
  assert.equal(penRows.length, 6);
  for (const row of penRows) assert.equal(row.tokenFromPrevious, undefined);
  assert.equal(historyAtLaunch.length, 6);
  for (const [known, generated] of historyAtLaunch) assert.equal(known, generated, 'the penalty history is complete at launch');
  assert.ok(runner.references > 0, 'the other request still ran lagged');
});

test('an abort while its row is in flight: the row is dropped, its KV blocks return only after that step is processed', () => {
  const { scheduler, runner } = makeScheduler(true);
  scheduler.submit(request('keep', 'a', [1, 2, 3], 8));
  scheduler.submit(request('gone', 'b', [4, 5, 6, 7, 8, 9, 10, 11], 8));
  let usedAtAbort = -1;
  let usedAfter = -1;
  const { outputs, finishes } = run(scheduler, (step) => {
    if (step === 6) {
      assert.ok(scheduler.stepsInFlight > 0);
      usedAtAbort = scheduler.kv.pool.usedBlocks();
      scheduler.abort('gone');
      usedAfter = scheduler.kv.pool.usedBlocks();
    }
  });
  assert.equal(usedAfter, usedAtAbort, 'blocks of a sequence in the launched step stay allocated');
  assert.deepEqual(outputs.get('keep'), expectedOutput('a', [1, 2, 3], 8));
  assert.equal(finishes.has('gone'), false);
  assert.equal(scheduler.kv.pool.usedBlocks(), 0);
  assert.ok(runner.launches > 0);
});

test('a failed launched step: the step after it is dropped, the failed one re-runs synchronously, outputs unchanged', () => {
  const { scheduler, runner } = makeScheduler(true);
  runner.failLaunches = new Set([3]);
  for (const r of mixed()) scheduler.submit(r);
  const { outputs } = run(scheduler);
  for (const r of mixed()) assert.deepEqual(outputs.get(r.rid), expectedOutput(r.adapterId, r.promptTokenIds, r.sampling.maxNewTokens), r.rid);
  assert.equal(scheduler.kv.pool.usedBlocks(), 0);
});
