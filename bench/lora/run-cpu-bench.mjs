#!/usr/bin/env node
// Builds and runs the CPU LoRA kernel microbenchmark (bench/lora/cpu_bench.cpp). Usage: node bench/lora/run-cpu-bench.mjs [threads]
import { spawnSync } from 'node:child_process';
import { buildDriver, cppSources } from '../../native/src/lora/test/build-driver.mjs';

const exe = buildDriver({
  name: 'lora_cpu_bench',
  sources: [...cppSources, 'native/src/lora/test/test_thread_pool.cpp', 'bench/lora/cpu_bench.cpp'],
  flags: ['-O3'],
});
const run = spawnSync(exe, process.argv.slice(2), { stdio: 'inherit' });
process.exit(run.status ?? 1);
