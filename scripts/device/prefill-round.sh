#!/usr/bin/env bash
# The next device call for issue #12's prefill row (sessions 21-22; bench/cuda/README.md "Session 22"): session-call.sh
# with the store-first prefill and coalesced csgmv chunks on for the engine runs, the wide shrink's block tiles and
# cluster split-K in lora_cuda_test (CPU twin), the device-pool test and test/gpu/cuda-wide-shrink, the LoRA
# microbenchmark's prefill / decode rows with the wide-shrink sweep (tile × split-K form × splits), the store-first A/B
# (store-first-ab.sh) and session 20's side-path A/B (Act delta, capped side expand). ~480 s.
#   carry [".device-carry"]:  COMMIT=$(git rev-parse --short HEAD) bash scripts/device/prefill-round.sh
# Every variable below can be overridden from the environment (e.g. CALL_LIMIT_S, GPU_TESTS_LIMIT_S).
set -u
export TSLORA_CUDA_LORA_STORE_FIRST=${TSLORA_CUDA_LORA_STORE_FIRST:-1} TSLORA_CUDA_LORA_CSGMV_COALESCE=${TSLORA_CUDA_LORA_CSGMV_COALESCE:-1}
export LORA_TEST_PATHS=${LORA_TEST_PATHS:-"tiled,tiled/wide,tiled/wide shrink m128k32,tiled/wide shrink m128k64,tiled/wide shrink m64k64,tiled/wide shrink m128k32 cluster,tiled/wide shrink m128k64 cluster,tiled/wide shrink m64k64 cluster"}
export LORA_BENCH_CASES=${LORA_BENCH_CASES:-"prefill 8x512 r64,decode 64x1 r16"} LORA_BENCH_NO_SWEEPS=${LORA_BENCH_NO_SWEEPS:-1}
export LORA_BENCH_WIDE_SWEEP=${LORA_BENCH_WIDE_SWEEP:-1}
# Last in the LoRA step, when time is left: Nsight Compute on the six decode 64 x 1 kernels (device-run.sh, LORA_NCU)
export LORA_NCU=${LORA_NCU:-1}
export SUITE_BUDGET_S=${SUITE_BUDGET_S:-450} SKIP_KERNEL_TESTS=${SKIP_KERNEL_TESTS:-0} GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-170}
export EXTRA_LIMIT_S=${EXTRA_LIMIT_S:-110} AB_ROUNDS=${AB_ROUNDS:-4} STEP_8B_PROCESSES=${STEP_8B_PROCESSES:-1}
export STEP_SKIP=${STEP_SKIP:-"host-overhead graphs-only triton-vs-csgmv serving decode-1b"}
export GPU_TESTS=${GPU_TESTS:-"test/gpu/cuda-store-first.test.ts test/gpu/cuda-wide-shrink.test.ts test/gpu/cuda-side-expand.test.ts test/gpu/cuda-parity-1b.test.ts test/gpu/cuda-parity-fixtures.test.ts"}
export AB1_NAME=${AB1_NAME:-sidepath} AB_BATCHES=${AB_BATCHES:-1,64}
export AB1_VARIANTS=${AB1_VARIANTS:-"fp32:;act:TSLORA_CUDA_LORA_DELTA_ACT=1;cap128:TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS=128"}
export EXTRA=${EXTRA:-"scripts/device/store-first-ab.sh scripts/device/side-priority-ab.sh"}
exec bash scripts/device/session-call.sh
