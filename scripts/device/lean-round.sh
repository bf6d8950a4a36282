#!/usr/bin/env bash
# The next device call (issue #12; written in session 24, extended in 25), within ~580 s: the prefill A/B on the
# defaults flipped in session 23, now that each variant's model is built under its own switches only (session 24's
# first A/B was void), and the opt-in lean store expand (TSLORA_CUDA_LORA_STORE_LEAN): the build, the store-first GPU
# tests (lean logits bit-identical to the plain store form, PEFT parity with each), the engine prefill A/B before /
# default / lean per backend with cuBLAS' beta = 1 figures, one 8B decode pair, and the LoRA benchmark's prefill rows
# (plain and lean store forms, with their stages / strips sweep) plus the decode row, the kernel test's store checks
# and the device pool with lean on, and racecheck over the lean kernel. Serving and triton-vs-csgmv are left out:
# session 24's call 1 measured them on the same code paths.
# Session 25 added the m64k64f shrink tile (m64k64's bits, the fragments of a step loaded first; opt-in): its kernel
# test path, the device pool with it and lean, cuda-wide-shrink (its logits m64k64's bit for bit), the store-lean
# strategies with it and the two shrinks side by side in the benchmark, and an engine variant in store-first-ab.sh
# ("leanf"); and cuda-prefill-attention (the opt-in mma.sync prefill attention's logits and PEFT parity; its kernel
# bench and the 8B prefill pair are table-round.sh's). Last, with what the budget leaves: Nsight Compute on the prefill qkv / down wide shrinks and the gate_up
# lean store expand (LORA_NCU_PREFILL=1 in bench/lora/device-run.sh: stall reasons, pipe use, the qkv shrink per SASS
# instruction), ~60-150 s; LORA_NCU_PREFILL=0 leaves it out.
#   carry [".device-carry"]:  COMMIT=$(git rev-parse --short HEAD) bash scripts/device/lean-round.sh   (timeout_s 600)
set -u
export CALL_LIMIT_S=${CALL_LIMIT_S:-580} SUITE_BUDGET_S=${SUITE_BUDGET_S:-550} STEP_8B_PROCESSES=${STEP_8B_PROCESSES:-1}
export STEP_SKIP=${STEP_SKIP:-"host-overhead graphs-only decode-1b serving triton-vs-csgmv"}
export GPU_TESTS=${GPU_TESTS:-"test/gpu/cuda-store-first.test.ts test/gpu/cuda-wide-shrink.test.ts test/gpu/cuda-prefill-attention.test.ts"} GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-90}
export EXTRA=${EXTRA:-scripts/device/store-first-ab.sh} EXTRA_LIMIT_S=${EXTRA_LIMIT_S:-130} SKIP_POOL_VARIANTS=${SKIP_POOL_VARIANTS:-1} AB_ROUNDS=${AB_ROUNDS:-3}
export SKIP_KERNEL_TESTS=${SKIP_KERNEL_TESTS:-0} LORA_TEST_PATHS=${LORA_TEST_PATHS:-"tiled/wide,tiled/wide shrink m64k64f"} LORA_LEAN_CHECKS=${LORA_LEAN_CHECKS:-1}
export RACECHECK_S=${RACECHECK_S:-35} LORA_NCU_PREFILL=${LORA_NCU_PREFILL:-1} LORA_NCU_S=${LORA_NCU_S:-45} LORA_BENCH_NO_SWEEPS=${LORA_BENCH_NO_SWEEPS:-1} LORA_BENCH_STORE_SWEEP=${LORA_BENCH_STORE_SWEEP:-1}
export LORA_BENCH_CASES=${LORA_BENCH_CASES:-"prefill 8x512 r64,decode 64x1 r16"}
export LORA_BENCH_STRATEGIES=${LORA_BENCH_STRATEGIES:-"triton,csgmv coalesced,csgmv small v11,triton store,triton store lean,csgmv coalesced store,csgmv coalesced store lean,triton store lean m64k64f,csgmv coalesced store lean m64k64f,triton wide shrink m64k64,triton wide shrink m64k64f"}
export LONG_TESTS=${LONG_TESTS:-"test/gpu/lora-kernels.test.ts"}
exec bash scripts/device/session-call.sh
