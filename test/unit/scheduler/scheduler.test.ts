import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvCacheManager } from '../../../src/engine/kv/kv-cache.js';
import { Scheduler, type SchedulerOptions } from '../../../src/engine/scheduler/scheduler.js';
import type { EngineRequest, TokenUpdate } from '../../../src/engine/types.js';
import { FakeRunner, expectedOutput } from './fake-runner.js';

function makeScheduler(overrides: Partial<SchedulerOptions> = {}, numBlocks = 256) {
  const numSlots = overrides.numSlots ?? 2;
  const runner = new FakeRunner(numSlots);
  let clock = 0;
  const scheduler = new Scheduler<string>(runner, {
    numSlots,
    loraEnabled: true,
    evictionPolicy: 'lru',
    maxRunningRequests: 64,
    chunkedPrefillSize: -1,
    overlapLoading: false,
    drainThresholdMs: 0,
    eosTokenIds: [],
    kv: new KvCacheManager(numBlocks, 4, true),
    now: () => clock,
    ...overrides,
  });
  return { scheduler, runner, advance: (ms: number) => (clock += ms) };
}

function request(rid: string, adapterId: string | null, prompt: number[], maxNewTokens: number): EngineRequest {
  return {
    rid,
    promptTokenIds: prompt,
    adapterId,
    logprobStartLen: -1,
    maxTotalTokens: 4096,
    sampling: {
      temperature: 0, topP: 1, topK: -1, minP: 0, seed: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0,
      maxNewTokens, minNewTokens: 0, stopTokenIds: [], ignoreEos: false, returnLogprob: false, topLogprobsNum: 0,
    },
  };
}

function runToCompletion(scheduler: Scheduler<string>, maxSteps = 10_000) {
  const outputs = new Map<string, number[]>();
  const finishes = new Map<string, TokenUpdate['finish']>();
  const firstStep = new Map<string, number>();
  let steps = 0;
  while (scheduler.hasWork()) {
    if (++steps > maxSteps) throw new Error('scheduler did not finish');
    for (const u of scheduler.step()) {
      if (!firstStep.has(u.rid)) firstStep.set(u.rid, steps);
      outputs.set(u.rid, [...(outputs.get(u.rid) ?? []), ...u.tokenIds]);
      if (u.finish) finishes.set(u.rid, u.finish);
    }
  }
  return { outputs, finishes, firstStep, steps };
}

test('mixed adapters over S = 2 slots: every request equals its solo run and no batch exceeds S ids', () => {
  const { scheduler, runner } = makeScheduler({ numSlots: 2, chunkedPrefillSize: 3 });
  for (const id of ['a', 'b', 'c']) scheduler.addAdapter(id, id, false);
  const reqs = [
    request('r0', 'a', [1, 2, 3, 4, 5], 6),
    request('r1', 'b', [7, 8], 4),
    request('r2', null, [9, 10, 11], 5),
    request('r3', 'c', [1, 2, 3, 4, 5], 3),
    request('r4', 'a', [4, 4], 2),
  ];
  for (const r of reqs) assert.equal(scheduler.submit(r), null);
  const { outputs, finishes } = runToCompletion(scheduler);
  for (const r of reqs) {
    assert.deepEqual(outputs.get(r.rid), expectedOutput(r.adapterId, r.promptTokenIds, r.sampling.maxNewTokens), r.rid);
    assert.deepEqual(finishes.get(r.rid), { type: 'length', length: r.sampling.maxNewTokens });
  }
  for (const step of runner.steps) {
    const ids = new Set(step.map((s) => s.slot));
    assert.ok(ids.size <= 2, `a step used ${ids.size} distinct slots`);
    const prefill = step.filter((s) => s.sampling === null || s.tokenIds.length > 1).reduce((n, s) => n + s.tokenIds.length, 0);
    assert.ok(prefill <= 3 + 0, 'chunked prefill budget respected');
  }
  assert.equal(scheduler.kv.pool.usedBlocks(), 0, 'all KV released');
});

test('a blocked adapter does not block later requests (skip, not block)', () => {
  const { scheduler } = makeScheduler({ numSlots: 2 });
  for (const id of ['a', 'b']) scheduler.addAdapter(id, id, false);
  scheduler.submit(request('ra', 'a', [1, 2], 20));
  scheduler.submit(request('rbase', null, [1, 2], 20));
  scheduler.step();
  scheduler.submit(request('rb', 'b', [3], 2)); // cannot fit: {a, base} is full
  scheduler.submit(request('ra2', 'a', [5], 2)); // fits: a is running
  const updates = scheduler.step();
  assert.ok(updates.some((u) => u.rid === 'ra2'), 'the later request for a running adapter was admitted');
  assert.ok(!updates.some((u) => u.rid === 'rb'));
  assert.equal(scheduler.stats().waiting, 1);
});

test('pinned adapter keeps its slot under churn and is copied when pinned', () => {
  const { scheduler, runner } = makeScheduler({ numSlots: 2 });
  for (const id of ['p', 'x', 'y', 'z']) scheduler.addAdapter(id, id, false);
  scheduler.setPinned('p', true);
  scheduler.step(); // copy-on-pin happens without any request
  assert.deepEqual(runner.log, ['copy p→0']);
  const reqs = ['x', 'y', 'z', 'x', null, 'p'].map((a, i) => request(`r${i}`, a, [i + 1, 2], 3));
  for (const r of reqs) scheduler.submit(r);
  const { outputs } = runToCompletion(scheduler);
  for (const r of reqs) assert.deepEqual(outputs.get(r.rid), expectedOutput(r.adapterId, r.promptTokenIds, 3));
  assert.equal(scheduler.slots.slotOf('p'), 0);
  assert.ok(!runner.log.some((l) => l.endsWith('→0') && l !== 'copy p→0'), 'nothing else was copied into the pinned slot');
});

test('overlap loading: copies for all fitting adapters start in one pass, requests wait only for their own', async () => {
  const { scheduler, runner } = makeScheduler({ numSlots: 3, overlapLoading: true });
  for (const id of ['a', 'b']) scheduler.addAdapter(id, id, false);
  scheduler.submit(request('ra', 'a', [1], 2));
  scheduler.submit(request('rb', 'b', [2], 2));
  scheduler.submit(request('rbase', null, [3], 2));
  const first = scheduler.step();
  assert.deepEqual(runner.log, ['async a→0', 'async b→1', 'clear 2'], 'two copies in one pass; base takes the third slot, zeroed');
  assert.deepEqual(first.map((u) => u.rid), ['rbase'], 'base runs while the copies are pending');
  assert.equal(scheduler.stats().waitingOnAdapterLoad, 2);
  runner.asyncCopies[1].resolve();
  await new Promise((r) => setImmediate(r));
  const second = scheduler.step();
  assert.ok(second.some((u) => u.rid === 'rb') && !second.some((u) => u.rid === 'ra'), 'b runs before a finished loading');
  runner.asyncCopies[0].resolve();
  await new Promise((r) => setImmediate(r));
  const { outputs } = runToCompletion(scheduler);
  assert.ok(outputs.has('ra'));
});

test('unload waits for a pending copy and clears the slot', async () => {
  const { scheduler, runner } = makeScheduler({ numSlots: 2, overlapLoading: true });
  scheduler.addAdapter('a', 'a', false);
  scheduler.submit(request('ra', 'a', [1], 2));
  scheduler.step();
  assert.equal(scheduler.abort('ra'), true, 'cancel while the adapter loads');
  let removed = false;
  const removal = scheduler.removeAdapter('a').then((h) => { removed = true; return h; });
  await new Promise((r) => setImmediate(r));
  assert.equal(removed, false, 'removal waits for the copy');
  runner.asyncCopies[0].resolve();
  assert.equal(await removal, 'a');
  assert.equal(scheduler.slots.state('a'), 'NOT_LOADED');
  assert.equal(runner.slotContents[0], null);
  assert.equal(scheduler.hasWork(), false);
});

test('prefix cache: same prompt under a second adapter is not served from the first one\'s KV', () => {
  const { scheduler } = makeScheduler({ numSlots: 2 });
  scheduler.addAdapter('a', 'a', false);
  const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  scheduler.submit(request('r1', 'a', prompt, 2));
  runToCompletion(scheduler);
  const cached: number[] = [];
  scheduler.submit(request('r2', 'a', prompt, 2));
  scheduler.submit(request('r3', null, prompt, 2));
  for (const u of scheduler.step()) cached.push(u.cachedTokens ?? -1);
  assert.deepEqual(cached, [8, 0]);
});

test('starvation control: a starving adapter gets a slot after the threshold', () => {
  const { scheduler, advance } = makeScheduler({ numSlots: 1, drainThresholdMs: 100 });
  for (const id of ['a', 'b']) scheduler.addAdapter(id, id, false);
  let n = 0;
  scheduler.submit(request(`a${n++}`, 'a', [1], 5));
  scheduler.step();
  scheduler.submit(request('b0', 'b', [1], 2));
  let bStarted = false;
  for (let i = 0; i < 200 && !bStarted; i++) {
    scheduler.submit(request(`a${n++}`, 'a', [1], 5)); // steady traffic for a
    advance(10);
    bStarted = scheduler.step().some((u) => u.rid === 'b0');
  }
  assert.ok(bStarted, 'b was admitted despite steady traffic for a');
});

test('a request that can never fit the KV cache is aborted at once', () => {
  const { scheduler } = makeScheduler({}, 2);
  const update = scheduler.submit(request('big', null, [1, 2, 3], 20));
  assert.equal(update?.finish?.type, 'abort');
});

test('with draining off, a blocked adapter still gets in (fallback threshold), and base requests are never blocked by it', () => {
  const { scheduler, advance } = makeScheduler({ numSlots: 2, drainThresholdMs: 0 });
  for (const id of ['a', 'b']) scheduler.addAdapter(id, id, false);
  let n = 0;
  scheduler.submit(request(`a${n++}`, 'a', [1], 5));
  scheduler.submit(request(`base${n++}`, null, [1], 5));
  scheduler.step();
  scheduler.submit(request('b0', 'b', [1], 2));
  let bStarted = false;
  let baseAdmittedWhileBlocked = false;
  for (let i = 0; i < 500 && !bStarted; i++) {
    scheduler.submit(request(`a${n++}`, 'a', [1], 5));
    const rid = `base${n++}`;
    scheduler.submit(request(rid, null, [1], 5));
    advance(100);
    const updates = scheduler.step();
    bStarted = updates.some((u) => u.rid === 'b0');
    if (!bStarted && updates.some((u) => u.rid === rid)) baseAdmittedWhileBlocked = true;
  }
  assert.ok(bStarted, 'b was admitted under steady traffic for a and base');
  assert.ok(baseAdmittedWhileBlocked, 'base requests kept flowing while b waited');
});

test('overlap loading holds back a lone prefill when a pending copy ends sooner, then prefills both together', async () => {
  let clock = 0;
  class TimedRunner extends FakeRunner {
    override step(seqs: Parameters<FakeRunner['step']>[0]) {
      clock += seqs.reduce((n, s) => n + s.tokenIds.length, 0); // 1 ms per token
      return super.step(seqs);
    }
  }
  const runner = new TimedRunner(3);
  const scheduler = new Scheduler<string>(runner, {
    numSlots: 3, loraEnabled: true, evictionPolicy: 'lru', maxRunningRequests: 8, chunkedPrefillSize: -1, overlapLoading: true,
    drainThresholdMs: 0, eosTokenIds: [], kv: new KvCacheManager(64, 4, false), now: () => clock,
  });
  for (const id of ['a', 'b']) scheduler.addAdapter(id, id, false);
  const prompt = Array.from({ length: 20 }, (_v, i) => i + 1);
  // Warm-up: learn the copy time (2 ms) and the prefill cost (1 ms per token).
  scheduler.submit(request('warm', 'a', prompt, 1));
  scheduler.step();
  clock += 2;
  runner.asyncCopies[0].resolve();
  await new Promise((r) => setImmediate(r));
  runToCompletion(scheduler);
  // Now: a is resident, b needs a copy. The prefill for a (20 ms) would outlast b's copy (≈2 ms).
  scheduler.submit(request('ra', 'a', prompt, 2));
  scheduler.submit(request('rb', 'b', prompt, 2));
  const stepsBefore = runner.steps.length;
  assert.deepEqual(scheduler.step(), [], 'the lone prefill waits for the copy');
  assert.equal(runner.steps.length, stepsBefore);
  assert.equal(scheduler.delayedPrefills, 1);
  clock += 2;
  runner.asyncCopies[1].resolve();
  await new Promise((r) => setImmediate(r));
  const updates = scheduler.step();
  assert.deepEqual(updates.map((u) => u.rid).sort(), ['ra', 'rb'], 'both prefilled in one step');
  const { outputs } = runToCompletion(scheduler);
  assert.ok(outputs.has('ra') && outputs.has('rb'));
});

test('a drain target is dropped when the starving adapter gives up, so the drained adapter is served again', () => {
  const { scheduler, advance } = makeScheduler({ numSlots: 1, drainThresholdMs: 0 });
  for (const id of ['a', 'b']) scheduler.addAdapter(id, id, false);
  scheduler.submit(request('a0', 'a', [1], 30));
  scheduler.step();
  scheduler.submit(request('b0', 'b', [1], 2));
  advance(6000);
  scheduler.step(); // b0 is blocked and starving: a is marked draining
  scheduler.submit(request('a1', 'a', [1], 30)); // held back while a drains
  assert.equal(scheduler.stats().draining.length, 1);
  scheduler.abort('b0'); // the starving client goes away
  const updates = scheduler.step();
  assert.ok(updates.some((u) => u.rid === 'a1'), 'a1 admitted once nothing starves');
});
