// min_new_tokens in the scheduler: while fewer than min_new_tokens tokens exist, each draw carries the EOS and stop
// ids as suppressed tokens (SGLang masks them to -inf); afterwards the list is gone and EOS ends the request. The
// stand-in runner honours the list the way the native samplers do (a suppressed argmax yields the next choice),
// so the run also shows the request going past its first EOS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvCacheManager } from '../../../src/engine/kv/kv-cache.js';
import { Scheduler } from '../../../src/engine/scheduler/scheduler.js';
import type { StepSequence, StepSequenceResult } from '../../../src/engine/model/runner-types.js';
import type { EngineRequest, TokenUpdate } from '../../../src/engine/types.js';
import { FakeRunner, expectedOutput } from '../scheduler/fake-runner.js';

class SuppressingRunner extends FakeRunner {
  override step(seqs: StepSequence[]): StepSequenceResult[] {
    return super.step(seqs).map((r, i) => {
      const banned = seqs[i].sampling?.suppressTokenIds;
      if (r.tokenId < 0 || !banned) return r;
      let token = r.tokenId;
      while (Array.from(banned).includes(token)) token = token + 100;
      return { ...r, tokenId: token };
    });
  }
}

function run(minNewTokens: number, eos: number[], stopTokenIds: number[], maxNewTokens = 8) {
  const runner = new SuppressingRunner(1);
  const scheduler = new Scheduler<string>(runner, {
    numSlots: 1, loraEnabled: false, evictionPolicy: 'lru', maxRunningRequests: 8, chunkedPrefillSize: -1,
    overlapLoading: false, drainThresholdMs: 0, eosTokenIds: eos, kv: new KvCacheManager(64, 4, true),
  });
  const req: EngineRequest = {
    rid: 'r', promptTokenIds: [1, 2, 3], adapterId: null, logprobStartLen: -1, maxTotalTokens: 4096,
    sampling: {
      temperature: 0, topP: 1, topK: -1, minP: 0, seed: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0,
      maxNewTokens, minNewTokens, stopTokenIds, ignoreEos: false, returnLogprob: false, topLogprobsNum: 0,
    },
  };
  assert.equal(scheduler.submit(req), null);
  const out: number[] = [];
  let finish: TokenUpdate['finish'];
  for (let i = 0; i < 100 && scheduler.hasWork(); i++) {
    for (const u of scheduler.step()) {
      out.push(...u.tokenIds);
      if (u.finish) finish = u.finish;
    }
  }
  const lists = runner.steps.flat().filter((s) => s.sampling).map((s) => (s.sampling!.suppressTokenIds ? Array.from(s.sampling!.suppressTokenIds) : null));
  return { out, finish, lists };
}

test('min_new_tokens: EOS and stop ids are suppressed for exactly the first min_new_tokens draws', () => {
  const natural = expectedOutput(null, [1, 2, 3], 8);
  // The first natural token is the EOS: without min_new_tokens the request ends at once.
  const eos = natural[0];
  const plain = run(0, [eos], []);
  assert.deepEqual(plain.out, [eos]);
  assert.deepEqual(plain.finish, { type: 'stop', matched: eos });
  assert.deepEqual(plain.lists, [null]);

  const forced = run(3, [eos], [natural[1]]);
  assert.deepEqual(forced.lists.slice(0, 3), [[eos, natural[1]], [eos, natural[1]], [eos, natural[1]]]);
  assert.ok(forced.lists.slice(3).every((l) => l === null), 'no list once min_new_tokens tokens exist');
  assert.ok(forced.out.length >= 3, `generated ${forced.out}`);
  for (const t of forced.out.slice(0, 3)) assert.ok(t !== eos && t !== natural[1], `token ${t} was suppressed`);
  // After the minimum the request still ends on EOS or a stop id when one comes, or at max_new_tokens.
  const f = forced.finish!;
  if (f.type === 'stop') assert.ok(forced.out.length > 3 && [eos, natural[1]].includes(f.matched));
  else assert.deepEqual(f, { type: 'length', length: 8 });
});

test('min_new_tokens = max_new_tokens: every draw suppresses EOS and the request ends by length', () => {
  const natural = expectedOutput(null, [1, 2, 3], 4);
  const r = run(4, [natural[0], natural[2]], [], 4);
  assert.equal(r.out.length, 4);
  assert.ok(r.lists.every((l) => l !== null && l.includes(natural[0])));
  assert.deepEqual(r.finish, { type: 'length', length: 4 });
});
