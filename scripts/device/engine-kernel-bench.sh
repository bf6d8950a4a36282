#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS; session 25): the engine's kernels compiled for the GPU, checked against their
# references (kernel-emu-test, the checks of test/gpu/engine-kernels, among them the mma.sync prefill attention's cases:
# its ldmatrix.trans layout has run only on the host emulator) and timed (--bench: the attention kernels at the 1B and
# 8B head shapes, the WMMA and the mma.sync prefill kernels side by side, the row kernels); then the 8B engine prefill
# step with each prefill attention kernel.
# Writes $AB_OUT/engine-kernels.log, $AB_OUT/prefill-attn-mma{0,1}.{log,json} and lines to $AB_OUT/combo.log.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; T0=$(date +%s)
# The engine-kernels test's own driver (engine-kernel-driver.mjs: built once, cached under build/lora-drivers).
driver=$(node native/src/cuda/engine/test/engine-kernel-driver.mjs 2> "$R/engine-kernels.log" | tail -1)
[ -x "$driver" ] && "$driver" --bench >> "$R/engine-kernels.log" 2>&1
echo "engine kernels rc=$? at $(( $(date +%s) - T0 )) s ($(grep -c '^FAIL' "$R/engine-kernels.log") FAIL lines)" >> "$R/combo.log"
# The engine's 8B prefill step (8 × 512, 8 distinct r16 adapters, csgmv; bench/cuda/decode.ts's prefill row) with the
# WMMA and the mma.sync prefill attention, one process each (the switch is read once per process); only where the
# kernel checks above passed. The 8B model is the one step-targets-synth.sh writes during the build.
B8=/tmp/tslora-bench-8b
for _ in $(seq 1 60); do grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null && break; sleep 1; done
if grep -q '^0 failures$' "$R/engine-kernels.log" && grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null; then
  for mma in 0 1; do
    TSLORA_CUDA_PREFILL_ATTN_MMA=$mma timeout 60 node --import tsx bench/cuda/decode.ts --model $B8/model --adapters $B8/adapters \
      --backends csgmv --batches 1 --scenarios base --steps 3 --cuda-graph-max-bs 0 --label "prefill-attn-mma=$mma" \
      --json "$R/prefill-attn-mma$mma.json" > "$R/prefill-attn-mma$mma.log" 2>&1
    echo "8B prefill, TSLORA_CUDA_PREFILL_ATTN_MMA=$mma rc=$? at $(( $(date +%s) - T0 )) s: $(grep '^prefill' "$R/prefill-attn-mma$mma.log")" >> "$R/combo.log"
  done
fi
exit 0
