// Correctness after churn on the CPU backend (issue #11, must-show 4): 8 adapters requested concurrently (two rounds
// of 8 adapters × 3 prompts) through 2 device slots and a host tier of 3, overlap loading on and off; every output
// must equal the PyTorch + PEFT greedy tokens (16 per prompt), and both tiers must really have churned.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firstDivergence, runChurn } from './adapter-churn.js';

for (const overlap of [false, true]) {
  test(`after churn (2 slots, host tier 3, 8 adapters), overlap loading ${overlap ? 'on' : 'off'}: greedy tokens equal PEFT`, { timeout: 300_000 }, async () => {
    const run = await runChurn([], overlap);
    for (const o of run.outputs) {
      assert.equal(firstDivergence(o), -1, `${o.adapter} prompt ${o.prompt}: got ${o.got.join(',')}, PEFT ${o.expected.join(',')}`);
    }
    assert.ok(run.hostEvictions > 0, `the host tier evicted adapters (${run.hostEvictions})`);
    assert.ok(run.hostTierBytes > 0, `the host tier reports its bytes (${run.hostTierBytes})`);
    assert.ok(run.deviceLoads >= 8, `adapters were copied into slots again and again (${run.deviceLoads} device loads)`);
  });
}
