#!/usr/bin/env bash
# The engine's decode step with the fused small-step LoRA kernel turned off (TSLORA_CUDA_LORA_FUSED=0: the
# shrink + expand pair, the shrink on the side stream under the base projection), graphs on as in step-targets.sh's
# "after" phase, whose decode-8b-after / decode-1b-after rows (fused on, the default) it is compared with.
# Run by scripts/device/gpu-suite.sh as SUITE_EXTRA_SCRIPTS=bench/lora/fused-ab.sh together with STEP_TARGETS=1
# (whose background synth writes the models): → $OUT/gpu/decode-{8b,1b}-pair.{log,json}
set -u
G="${OUT:-/tmp/tslora-gpu-suite}/gpu"
BW=()
[[ -s $G/bandwidth.json ]] && BW=(--bandwidth "$G/bandwidth.json")
for _ in $(seq 90); do grep -q '^synth 1b rc=' "$G/synth.log" 2>/dev/null && break; sleep 1; done
for spec in "8b 1,64 --no-prefill" "1b 1,8,64"; do
  set -- $spec
  name=$1 batches=$2; shift 2
  timeout --kill-after=5 40 env TSLORA_CUDA_LORA_FUSED=0 node --import tsx bench/cuda/decode.ts --model "/tmp/tslora-bench-$name/model" \
    --adapters "/tmp/tslora-bench-$name/adapters" --steps 10 --backends csgmv --batches "$batches" "$@" --cuda-graph-max-bs 128 \
    --label pair "${BW[@]}" --json "$G/decode-$name-pair.json" > "$G/decode-$name-pair.log" 2>&1
  echo "decode-$name-pair rc=$?"
done
