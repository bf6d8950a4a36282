// The host half of the CUDA LoRA pool's setStep (native/src/cuda/lora_step_tables.h) on the CPU: the kernels' segment
// tables for triton and csgmv steps, the 16-row split of a csgmv decode graph, the coalesced csgmv prefill
// (TSLORA_CUDA_LORA_CSGMV_COALESCE), the store-first expand's coverage facts, and the refusals
// (native/src/cuda/test/lora_step_tables_test.cpp lists the cases).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// @ts-expect-error plain ESM helper without type declarations
import { buildDriver } from '../../native/src/lora/test/build-driver.mjs';

test('buildStepTables: split, coalesced, padded and checked segment tables, coverage for the store expand', () => {
  const driver: string = buildDriver({ name: 'lora_step_tables_test', sources: ['native/src/cuda/test/lora_step_tables_test.cpp'] });
  const run = spawnSync(driver, [], { encoding: 'utf8' });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^0 failures$/m);
});
