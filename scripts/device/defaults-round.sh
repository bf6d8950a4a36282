#!/usr/bin/env bash
# The device call after session 23's (issue #12): the step-target table on the defaults flipped after its first call
# (store-first prefill, coalesced csgmv chunks, the wide shrink's m64k64 tile) and its csgmv pass-planner fix, within
# ~480 s: the build, the GPU tests of the flipped paths (PEFT parity with the defaults, the store-first and wide-shrink
# switch tests with their parity reruns, the pass test), the engine prefill A/B before / after (store-first-ab.sh, with
# the cuBLAS beta = 1 figures the store-first prefill row needs), one 8B before / after pair, serving and
# triton-vs-csgmv (the c128 row), and the LoRA benchmark's engine rows with lora_cuda_test's default tiled path and the
# device-pool tests on the new defaults.
#   carry [".device-carry"]:  COMMIT=$(git rev-parse --short HEAD) bash scripts/device/defaults-round.sh
set -u
export CALL_LIMIT_S=${CALL_LIMIT_S:-480} SUITE_BUDGET_S=${SUITE_BUDGET_S:-445} STEP_8B_PROCESSES=${STEP_8B_PROCESSES:-1}
export STEP_SKIP=${STEP_SKIP:-"host-overhead graphs-only decode-1b"}
export GPU_TESTS=${GPU_TESTS:-"test/gpu/cuda-parity-1b.test.ts test/gpu/cuda-store-first.test.ts test/gpu/cuda-wide-shrink.test.ts test/gpu/cuda-parity-fixtures.test.ts test/gpu/cuda-graphs.test.ts test/gpu/cuda-forward-passes.test.ts test/gpu/cuda-prefill-attention.test.ts"}
export GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-90} EXTRA=${EXTRA:-scripts/device/store-first-ab.sh} EXTRA_LIMIT_S=${EXTRA_LIMIT_S:-100}
export AB_ROUNDS=${AB_ROUNDS:-3}  # store-first-ab.sh: before / default / one switch off, triton and csgmv
export SKIP_KERNEL_TESTS=${SKIP_KERNEL_TESTS:-0} LORA_TEST_PATHS=${LORA_TEST_PATHS:-tiled} LORA_BENCH_NO_SWEEPS=${LORA_BENCH_NO_SWEEPS:-1}
export LORA_BENCH_CASES=${LORA_BENCH_CASES:-"prefill 8x512 r64,decode 64x1 r16"}
export LORA_BENCH_STRATEGIES=${LORA_BENCH_STRATEGIES:-"triton,csgmv C16,csgmv C128,csgmv coalesced,triton store,csgmv C128 store,csgmv coalesced store,csgmv small v11"}
exec bash scripts/device/session-call.sh
