// nvcc -gencode lists of the two CUDA builds, shared by scripts/build-cuda.mjs (kernel library) and
// scripts/build-cuda-addon.mjs (engine + addon):
//  - the machine build (default): SASS for sm_90a (H100/H200, what is tested) + compute_90 PTX;
//  - the portable prebuild (--portable, scripts/prebuild.mjs): a fat binary with SASS for sm_80 (A100), sm_86
//    (A10/RTX 30xx), sm_89 (L4/L40/RTX 40xx) and sm_90 (H100/H200), plus compute_90 PTX that newer GPUs JIT-compile.
const pair = (arch, code) => ['-gencode', `arch=${arch},code=${code}`];

export const MACHINE_GENCODE = [...pair('compute_90a', 'sm_90a'), ...pair('compute_90', 'compute_90')];

export const PORTABLE_GENCODE = [
  ...pair('compute_80', 'sm_80'),
  ...pair('compute_86', 'sm_86'),
  ...pair('compute_89', 'sm_89'),
  ...pair('compute_90', 'sm_90'),
  ...pair('compute_90', 'compute_90'),
];

// The portable list compiles each source five times; nvcc --threads runs those passes in parallel.
export function gencodeFor(argv) {
  return argv.includes('--portable') ? [...PORTABLE_GENCODE, '--threads', '4'] : MACHINE_GENCODE;
}
