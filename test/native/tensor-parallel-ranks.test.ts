// The CPU tensor-parallel machinery below the model (native/src/cpu/tp/test/rank_group_test.cpp): the in-process
// all-reduce gives every rank the same rank-ordered sum over 200 rounds of random sizes for 1-4 ranks; a rank that
// fails releases its peers from the barrier and its error is rethrown; the shard plan tiles heads, KV heads,
// intermediate and vocabulary and slices the LoRA modules column- or row-parallel.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

// @ts-expect-error plain ESM helper without type declarations
import { buildDriver } from '../../native/src/lora/test/build-driver.mjs';

const driver: string = buildDriver({
  name: 'rank_group_test',
  sources: ['native/src/cpu/tp/rank-group.cpp', 'native/src/cpu/tp/test/rank_group_test.cpp'],
});
const cases = spawnSync(driver, ['--list'], { encoding: 'utf8' }).stdout.trim().split('\n');

test('the driver lists its cases', () => {
  assert.deepEqual(cases, ['all-reduce', 'failed-rank', 'shard-plan']);
});

for (const name of cases) {
  test(`tensor-parallel ranks: ${name}`, () => {
    const run = spawnSync(driver, [name], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^ok ${name}$`, 'm'));
  });
}
