// The engine kernels' GPU driver: kernel-emu-test.cpp built with -DTSLORA_KERNEL_TEST_ON_GPU against the kernels it
// checks (and, with --bench, times), compiled and cached by build-driver.mjs under build/lora-drivers. One spec for
// every user (test/gpu/engine-kernels.test.ts, bench/cuda/step64-round.sh, scripts/device/engine-kernel-bench.sh), so
// they run the same executable and a round builds it once.
// CLI: node native/src/cuda/engine/test/engine-kernel-driver.mjs   (prints the executable's path)
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDriver } from '../../../lora/test/build-driver.mjs';

const E = 'native/src/cuda/engine';

export function buildEngineKernelDriver() {
  return buildDriver({
    name: 'engine_kernel_test',
    compiler: 'nvcc',
    flags: ['-gencode', 'arch=compute_90a,code=sm_90a', '-DTSLORA_KERNEL_TEST_ON_GPU', `-I${E}`],
    sources: [`${E}/test/kernel-emu-test.cpp`, ...['attention', 'attention-prefill', 'greedy', 'kernels', 'skinny-gemm'].map((f) => `${E}/${f}.cu`)],
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) console.log(buildEngineKernelDriver());
