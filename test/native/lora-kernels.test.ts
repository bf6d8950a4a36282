// CPU LoRA pool and kernels (native/src/lora) against a naive double-precision reference built from the PEFT pairs:
// ranks 1..64, q/v-only and fused adapters, mixed/skewed/zero-length/decode-only batches, both strategies and every
// chunk size, stale slots (rank 64 then rank 8), clearSlot, bf16 pool storage, and the error categories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, cppSources } from '../../native/src/lora/test/build-driver.mjs';

const driver: string = buildDriver({
  name: 'lora_kernels_test',
  sources: [...cppSources, 'native/src/lora/test/test_thread_pool.cpp', 'native/src/lora/test/lora_kernels_test.cpp'],
});

const list = spawnSync(driver, ['--list'], { encoding: 'utf8' });
assert.equal(list.status, 0, list.stderr);
const cases = list.stdout.trim().split('\n');

test('the driver lists the expected cases', () => {
  assert.deepEqual([...cases].sort(), ['bf16-storage', 'clear-slot', 'errors', 'fused', 'missing-pieces', 'ranks', 'stale-slot', 'strides']);
});

for (const name of cases) {
  test(`lora kernels: ${name}`, () => {
    const run = spawnSync(driver, [name], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^ok ${name}$`, 'm'));
  });
}
