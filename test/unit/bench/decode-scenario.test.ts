/** bench/cuda/decode-scenario.ts: the decode benchmarks' sequences per scenario (slots, prompts, block ranges). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrefill, prefillSequences, scenarioSequences } from '../../../bench/cuda/decode-scenario.js';

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

test('--prefill NxT parses to prompts and tokens, and refuses anything else', () => {
  assert.equal(parsePrefill(undefined), undefined);
  assert.deepEqual(parsePrefill('8x512'), { prompts: 8, tokens: 512 });
  for (const bad of ['8', '8x', 'x512', '0x512', '8x0', '8 x 512', '-1x4']) assert.throws(() => parsePrefill(bad), /expected NxT/);
});

test('a prefill step: prompt b gets its own ⌈T/16⌉ blocks, slot b % 8 with adapters and none without', () => {
  const withA = prefillSequences({ prompts: 9, tokens: 40, blockSize: 16, withAdapters: true, vocabSize: 100 });
  assert.deepEqual(withA.map((s) => s.slot), [0, 1, 2, 3, 4, 5, 6, 7, 0]);
  assert.deepEqual(withA[1].blockTable, [3, 4, 5]);
  assert.equal(withA[1].tokenIds.length, 40);
  assert.deepEqual(Array.from(withA[1].tokenIds).slice(0, 3), [17, 30, 43]);
  const base = prefillSequences({ prompts: 2, tokens: 40, blockSize: 16, withAdapters: false, vocabSize: 100 });
  assert.deepEqual(base.map((s) => s.slot), [-1, -1]);
  assert.deepEqual(base[0].tokenIds, withA[0].tokenIds);
});
