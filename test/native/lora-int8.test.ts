// The int8 CPU LoRA pool (native/src/lora, PoolDType::I8): every module, both strategies, ranks 1..64, stale slots,
// fused pairs and the fused path's pieces against a double-precision reference of the quantized adapter (tight) and of
// the fp32 adapter (the quantization step's elementwise bound); the generic and AVX-512 expand copies; storage sizes
// and the rounding rule (lora_int8_test.cpp says how each bound is derived).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver, cppSources } from '../../native/src/lora/test/build-driver.mjs';

const driver: string = buildDriver({
  name: 'lora_int8_test',
  sources: [...cppSources, 'native/src/lora/slot_image.cpp', 'native/src/lora/test/test_thread_pool.cpp', 'native/src/lora/test/lora_int8_test.cpp'],
});

const list = spawnSync(driver, ['--list'], { encoding: 'utf8' });
assert.equal(list.status, 0, list.stderr);
const cases = list.stdout.trim().split('\n');

test('the driver lists the expected cases', () => {
  assert.deepEqual([...cases].sort(), ['expand-copies', 'fused', 'references', 'storage']);
});

for (const name of cases) {
  test(`int8 LoRA pool: ${name}`, () => {
    const run = spawnSync(driver, [name], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^ok ${name}$`, 'm'));
  });
}
