import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeWideSweep, wideSweepMarkdown, type SweepEntry } from '../../../bench/cuda/wide-sweep.js';

const CASE = 'prefill 8x512 r64';
const sweep = (module: string, wideTile: string, cluster: boolean, sweepSplits: number, shrinkUs: number): SweepEntry =>
  ({ case: CASE, strategy: 'triton wide shrink', module, wideTile, cluster, sweepSplits, shrinkUs });
const base = (module: string, shrinkUs: number): SweepEntry => ({ case: CASE, strategy: 'triton', module, shrinkUs });

test('the wide-shrink sweep summary picks each module\'s fastest tile, form and splits against the default shrink', () => {
  const results: SweepEntry[] = [
    base('qkv', 60), base('gate_up', 45), base('down', 83), base('o', 30),
    sweep('qkv', 'w8', false, 8, 79), sweep('qkv', 'm128k32', false, 4, 40), sweep('qkv', 'm128k32', true, 4, 31.04), sweep('qkv', 'm128k32', true, 8, 33),
    sweep('gate_up', 'w8', false, 8, 55), sweep('gate_up', 'm64k64', true, 2, 30),
    sweep('down', 'w8', false, 12, 95), sweep('down', 'm128k64', false, 6, 70),
    // another case and a non-sweep row of the same module must not count
    { ...sweep('qkv', 'm64k64', false, 2, 1), case: 'decode 64x1 r16' }, { case: CASE, strategy: 'triton wide shrink', module: 'qkv', shrinkUs: 2 },
  ];
  const rows = summarizeWideSweep(results);
  const qkv = rows.find((r) => r.module === 'qkv')!;
  assert.deepEqual(qkv.best, { tile: 'm128k32', cluster: true, splits: 4, us: 31.04 });
  assert.equal(qkv.defaultUs, 60);
  assert.deepEqual(qkv.bestPerTile['m128k32'], { cluster: false, splits: 4, us: 40 });
  assert.deepEqual(qkv.bestPerTile['m128k32 cluster'], { cluster: true, splits: 4, us: 31.04 });
  assert.equal(rows.find((r) => r.module === 'o'), undefined);  // no sweep rows: not summarized
  const md = wideSweepMarkdown(rows);
  assert.match(md, /\| qkv \| 60\.0 \| 31\.0 \(m128k32 cluster, 4\) \| 0\.517 \|/);
  // 60 + 45 + 83 = 188 → 31.04 + 30 + 70 = 131.04
  assert.match(md, /qkv \+ gate_up \+ down shrinks: 188\.0 → 131\.0 µs \(-57\.0 µs per layer/);
  // a module without the default row: no layer sum, a dash for the ratio
  const partial = wideSweepMarkdown(summarizeWideSweep(results.filter((r) => !(r.strategy === 'triton' && r.module === 'down'))));
  assert.doesNotMatch(partial, /shrinks:/);
  assert.match(partial, /\| down \| – \| 70\.0 \(m128k64, 6\) \| – \|/);
});
