#!/usr/bin/env bash
# The device call after lean-round.sh (issue #12, session 25), within ~570 s: the whole step-target table on the final
# defaults (with the lean store expand flipped on in lora_expand.cu if lean-round.sh decided so) and, beside it, where
# the batch-1 shared LoRA cost goes (the row furthest from its target that no call has taken apart yet):
#  - EXTRA scripts/device/store-first-ab.sh with STORE_AB_BACKENDS="": cuBLAS' beta = 1 figures alone (the prefill
#    row counts them), not the engine prefill A/B (lean-round.sh's);
#  - EXTRA scripts/device/module-cost-ab.sh (prepared in session 20, never run): four 8B pools in one process, each
#    with 8 r16 adapters of one target module (qkv, o, gate_up, down), batch 1 and 64: the LoRA cost of each module alone;
#  - the GPU tests of the prefill defaults and PEFT parity, one 8B before / after pair, serving and triton-vs-csgmv (the
#    c128 row), the LoRA benchmark's engine rows and the kernel and device-pool tests.
# Then bench/cuda/step-targets.ts writes step-targets.json from this call's own reports. (The mma.sync prefill
# attention's GPU checks and timings: attention-round.sh, a shorter call.)
#   carry [".device-carry"]:  COMMIT=$(git rev-parse --short HEAD) bash scripts/device/table-round.sh   (timeout_s ~590)
set -u
export CALL_LIMIT_S=${CALL_LIMIT_S:-570} SUITE_BUDGET_S=${SUITE_BUDGET_S:-540} STEP_8B_PROCESSES=${STEP_8B_PROCESSES:-1}
export EXTRA=${EXTRA:-"scripts/device/store-first-ab.sh scripts/device/module-cost-ab.sh"}
export EXTRA_LIMIT_S=${EXTRA_LIMIT_S:-130} STORE_AB_BACKENDS=${STORE_AB_BACKENDS-}
export AB_ROUNDS=${AB_ROUNDS:-3} MODULE_AB_BATCHES=${MODULE_AB_BATCHES:-1,64}
exec bash scripts/device/defaults-round.sh
