/** bench/cuda/decode-scenario.ts: the decode benchmarks' sequences per scenario (slots, prompts, block ranges). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scenarioSequences } from '../../../bench/cuda/decode-scenario.js';

test('base rows take no adapter, shared rows slot 0, distinct rows slot b % 8; each row its own blocks and prompt', () => {
  const make = (scenario: 'base' | 'shared' | 'distinct') => scenarioSequences({ batch: 10, scenario, promptTokens: 4, blocksPerSeq: 3, vocabSize: 100 });
  assert.deepEqual(make('base').map((s) => s.slot), Array(10).fill(-1));
  assert.deepEqual(make('shared').map((s) => s.slot), Array(10).fill(0));
  assert.deepEqual(make('distinct').map((s) => s.slot), [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
  const [first, second] = make('distinct');
  assert.deepEqual(first.tokenIds, [3, 10, 17, 24]);
  assert.deepEqual(second.tokenIds, [34, 41, 48, 55]);
  assert.deepEqual(second.blockTable, [3, 4, 5]);
  assert.equal(second.startPosition, 0);
  assert.equal(second.sampling?.temperature, 0);
});
