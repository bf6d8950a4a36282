#!/usr/bin/env bash
# A short device call (issue #12, session 25), ~300 s: the opt-in mma.sync prefill attention (TSLORA_CUDA_PREFILL_ATTN_MMA,
# engine/attention-prefill-mma.cuh) on a GPU for the first time: the addon build, scripts/device/engine-kernel-bench.sh
# (the engine kernels' checks on the GPU, its ldmatrix.trans among them, the kernel bench with the WMMA and mma.sync
# prefill kernels at the 1B and 8B head shapes, and the 8B engine prefill step 8 × 512 with each, one process each),
# then cuda-prefill-attention (logits on / off, PEFT parity with it on) and engine-kernels among the GPU tests. Nothing
# of the step-target table beyond the suite's one 8B decode pair.
#   carry [".device-carry"]:  COMMIT=$(git rev-parse --short HEAD) bash scripts/device/attention-round.sh   (timeout_s ~330)
set -u
export CALL_LIMIT_S=${CALL_LIMIT_S:-310} SUITE_BUDGET_S=${SUITE_BUDGET_S:-290} STEP_8B_PROCESSES=${STEP_8B_PROCESSES:-1}
export STEP_SKIP=${STEP_SKIP:-"host-overhead graphs-only decode-1b serving triton-vs-csgmv lora-bench"}
export GPU_TESTS=${GPU_TESTS:-"test/gpu/cuda-prefill-attention.test.ts test/gpu/engine-kernels.test.ts"} GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-90}
export EXTRA=${EXTRA:-scripts/device/engine-kernel-bench.sh} EXTRA_LIMIT_S=${EXTRA_LIMIT_S:-130}
export LONG_TESTS=${LONG_TESTS:-"test/gpu/cuda-parity-1b.test.ts"}
exec bash scripts/device/session-call.sh
