#!/bin/bash
# Device round for the LoRA delta in the skinny GEMM at decode batch 1-2 (issue #12, TSLORA_CUDA_SKINNY_LORA=1: the
# small-step shrink as its own launch, the expand in the skinny GEMM's epilogue; session 17). Writes logs / JSON under
# ROUND_OUT; every step time-boxed by ROUND_LIMIT_S (the run phase fits ~70 s: four 8B processes of ~9 s, then the GPU
# tests as time allows).
#   bash scripts/device/skinny-lora-round.sh build   tsc, CUDA addon, bandwidth probe
#   bash scripts/device/skinny-lora-round.sh run     8B decode A/B in alternating processes (default / switch on, twice
#       each; graphs on, csgmv, batch 1 / 2 / 8, base / shared / distinct), then test/gpu/cuda-skinny-lora.test.ts and
#       test/gpu/skinny-lora-kernel.test.ts
# Needs the synthetic 8B model at /tmp/tslora-bench-8b/{model,adapters,ready} (scripts/device/gpu-suite.sh makes it).
set -u
OUT=${ROUND_OUT:-/tmp/skinnylora-out}
LIMIT=${ROUND_LIMIT_S:-70}
mkdir -p "$OUT"
T0=$(date +%s)
left() { echo $(( LIMIT - 5 - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/progress-$PHASE.txt"; }
# step NAME LIMIT_S LOGFILE CMD...: time-boxed by what is left of the phase
step() {
  local name=$1 lim=$2 logf=$3; shift 3
  local rem; rem=$(left)
  if (( rem < 8 )); then log "$name: SKIPPED (budget spent)"; return 1; fi
  (( lim > rem )) && lim=$rem
  local s; s=$(date +%s)
  timeout --kill-after=3 "$lim" "$@" > "$OUT/$logf" 2>&1
  local rc=$?
  log "$name: rc=$rc ($(( $(date +%s) - s )) s, limit $lim s)"
  return $rc
}
PHASE=${1:-run}

if [[ $PHASE == build ]]; then
  { nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; nvcc --version | tail -1; node -v; nproc; git log --oneline -1; } > "$OUT/gpu.txt" 2>&1
  ( nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a bench/cuda/bandwidth.cu -o /tmp/skinnylora-bandwidth > "$OUT/bandwidth-build.log" 2>&1 ) &
  step tsc 40 tsc.log npm run build
  step build-cuda 185 build-cuda.log node scripts/build-native.mjs --force --cuda
  wait
  log "build done"
  exit 0
fi

# ---- run ----
cat /proc/loadavg > "$OUT/loadavg-start.txt"
nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/gpu-name.txt" 2>&1
B8=/tmp/tslora-bench-8b
BW=/tmp/skinnylora-bw.json
if [[ -x /tmp/skinnylora-bandwidth ]]; then step bandwidth 10 bandwidth.log /tmp/skinnylora-bandwidth "$BW"; fi
[[ -f $BW ]] && cp "$BW" "$OUT/bandwidth.json"
BWARG=(); [[ -f $BW ]] && BWARG=(--bandwidth "$BW")

# 1. 8B decode A/B in alternating processes, graphs on: default / TSLORA_CUDA_SKINNY_LORA=1, twice each.
for i in $(seq 1 30); do [[ -f $B8/ready ]] && break; sleep 1; done
if [[ -f $B8/ready ]]; then
  ab() {  # ab TAG ENV...
    local tag=$1; shift
    step "ab8b $tag" 20 "ab8b-$tag.log" env "$@" node --import tsx bench/cuda/decode.ts --model $B8/model --adapters $B8/adapters \
      --steps 12 --backends csgmv --batches 1,2,8 --scenarios base,shared,distinct --no-prefill --cuda-graph-max-bs 128 \
      --label "$tag" "${BWARG[@]}" --json "$OUT/ab8b-$tag.json"
  }
  ab 1-default AB=default
  ab 1-skinny TSLORA_CUDA_SKINNY_LORA=1
  ab 2-default AB=default
  ab 2-skinny TSLORA_CUDA_SKINNY_LORA=1
else
  log "8B model not ready: A/B skipped"
fi

# 2. The GPU tests: engine-level on/off bit identity, then the kernel driver (fused vs GEMM + expand).
step cuda-skinny-lora 20 cuda-skinny-lora.log node scripts/run-tests.mjs test/gpu/cuda-skinny-lora.test.ts
step skinny-lora-kernel 60 skinny-lora-kernel.log node scripts/run-tests.mjs test/gpu/skinny-lora-kernel.test.ts
log "run done"
