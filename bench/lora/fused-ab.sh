#!/usr/bin/env bash
# The engine's decode step with the opt-in fused small-step LoRA kernel (TSLORA_CUDA_LORA_FUSED=1: one launch per
# module after the base projection, nothing on the side stream), graphs on as in step-targets.sh's "after" phase,
# whose decode-8b-after / decode-1b-after rows (the default: the shrink + expand pair, the shrink on the side stream)
# it is compared with. Run by scripts/device/gpu-suite.sh as SUITE_EXTRA_SCRIPTS=bench/lora/fused-ab.sh together with
# STEP_TARGETS=1 (whose background synth writes the models): → $OUT/gpu/decode-{8b,1b}-fused.{log,json}
set -u
G="${OUT:-/tmp/tslora-gpu-suite}/gpu"
BW=()
[[ -s $G/bandwidth.json ]] && BW=(--bandwidth "$G/bandwidth.json")
for _ in $(seq 90); do grep -q '^synth 1b rc=' "$G/synth.log" 2>/dev/null && break; sleep 1; done
for spec in "8b 1,64 --no-prefill" "1b 1,8,64"; do
  set -- $spec
  name=$1 batches=$2; shift 2
  timeout --kill-after=5 40 env TSLORA_CUDA_LORA_FUSED=1 node --import tsx bench/cuda/decode.ts --model "/tmp/tslora-bench-$name/model" \
    --adapters "/tmp/tslora-bench-$name/adapters" --steps 10 --backends csgmv --batches "$batches" "$@" --cuda-graph-max-bs 128 \
    --label fused "${BW[@]}" --json "$G/decode-$name-fused.json" > "$G/decode-$name-fused.log" 2>&1
  echo "decode-$name-fused rc=$?"
done
