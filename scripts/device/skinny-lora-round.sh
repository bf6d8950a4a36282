#!/bin/bash
# Device round for the LoRA delta in the skinny GEMM at decode batch 1-2 (issue #12, TSLORA_CUDA_SKINNY_LORA; session
# 16's plan, not yet run on a GPU). Writes logs / JSON under ROUND_OUT; every step time-boxed by ROUND_LIMIT_S.
#   bash scripts/device/skinny-lora-round.sh build   tsc, CUDA addon, bandwidth probe; 1B PEFT reference if none in /tmp
#   bash scripts/device/skinny-lora-round.sh run     8B decode A/B in alternating processes (default / switch on / U
#       late / A unstaged; graphs on), the kernel driver + --bench, cuda-skinny-lora + skinny-gemm, cuda-parity-1b with
#       the switch on, nsys per-kernel sums of one switch-on process (as time allows, in that order)
# Needs the synthetic 8B model at /tmp/tslora-bench-8b/{model,adapters,ready} (scripts/device/gpu-suite.sh makes it).
set -u
OUT=${ROUND_OUT:-/tmp/fuselora-out}
LIMIT=${ROUND_LIMIT_S:-150}
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
REF=/tmp/tslora-1b/reference.json
MYREF=/tmp/fuselora-1b

if [[ $PHASE == build ]]; then
  { nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; nvcc --version | tail -1; node -v; nproc; git log --oneline -1; } > "$OUT/gpu.txt" 2>&1
  if [[ ! -f $REF ]]; then
    ( timeout 180 python3 scripts/device/make-1b-reference.py --out "$MYREF" --layers 4 > "$OUT/make-1b-reference.log" 2>&1 ) &
  fi
  ( nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a bench/cuda/bandwidth.cu -o /tmp/fuselora-bandwidth > "$OUT/bandwidth-build.log" 2>&1 ) &
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
BW=/tmp/fuselora-bw.json
if [[ -x /tmp/fuselora-bandwidth ]]; then step bandwidth 15 bandwidth.log /tmp/fuselora-bandwidth "$BW"; fi
[[ -f $BW ]] && cp "$BW" "$OUT/bandwidth.json"
BWARG=(); [[ -f $BW ]] && BWARG=(--bandwidth "$BW")

# 1. 8B decode A/B in alternating processes, graphs on.
for i in $(seq 1 40); do [[ -f $B8/ready ]] && break; sleep 1; done
if [[ -f $B8/ready ]]; then
  ab() {  # ab TAG ENV...
    local tag=$1; shift
    step "ab8b $tag" 25 "ab8b-$tag.log" env "$@" node --import tsx bench/cuda/decode.ts --model $B8/model --adapters $B8/adapters \
      --steps 12 --backends csgmv --batches ${AB_BATCHES:-1,2} --scenarios ${AB_SCEN:-base,shared} --no-prefill --cuda-graph-max-bs 128 \
      --label "$tag" "${BWARG[@]}" --json "$OUT/ab8b-$tag.json"
  }
  ab 1-default AB=default
  ab 1-skinny TSLORA_CUDA_SKINNY_LORA=1
fi
# 2. The kernel driver (correctness: fused vs GEMM + expand, the shrink in the launch staged / unstaged) + its bench.
step skinny-lora-kernel-test 40 skinny-lora-kernel-test.log node scripts/run-tests.mjs test/gpu/skinny-lora-kernel.test.ts
DRV=$(ls -t build/lora-drivers/skinny_lora_test-* 2>/dev/null | grep -v '\.tmp$' | head -1)
[[ -n $DRV ]] && step skinny-lora-bench 30 skinny-lora-bench.log "$DRV" --bench
if [[ -f $B8/ready ]]; then
  ab 1-skinny-lateu TSLORA_CUDA_SKINNY_LORA=1 TSLORA_CUDA_SKINNY_SHRINK_EARLY_U=0
  AB_BATCHES=1,2,8 AB_SCEN=base,shared,distinct  # the second round: every row the brief names
  ab 2-default AB=default
  ab 2-skinny TSLORA_CUDA_SKINNY_LORA=1
else
  log "8B model not ready: A/B skipped"
fi

# 3. Engine-level GPU tests with the switch on (bit-identity on/off; PEFT parity on the 1B shape).
step gpu-skinny-tests 60 gpu-skinny-tests.log node scripts/run-tests.mjs test/gpu/cuda-skinny-lora.test.ts test/gpu/skinny-gemm.test.ts
[[ -f $REF ]] || REF=$MYREF/reference.json
step parity-1b-skinny 45 parity-1b-skinny.log env TSLORA_CUDA_SKINNY_LORA=1 TSLORA_1B_REFERENCE=$REF node scripts/run-tests.mjs test/gpu/cuda-parity-1b.test.ts

[[ -f $B8/ready ]] && ab 1-skinny-unstaged TSLORA_CUDA_SKINNY_LORA=1 TSLORA_CUDA_SKINNY_SHRINK_STAGE=0

# 4. Where the time goes: nsys of one skinny-LoRA process at batch 1 (per-kernel sums).
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda/nsight-systems*/bin/nsys 2>/dev/null | head -1)
echo "nsys: ${NSYS:-none}; $(ls /usr/local/cuda/bin 2>/dev/null | tr '\n' ' ')" > "$OUT/nsys-where.txt"
if [[ -n $NSYS ]] && [[ -f $B8/ready ]] && (( $(left) > 30 )); then
  step nsys-skinny $(( $(left) - 8 )) nsys-skinny.log env TSLORA_CUDA_SKINNY_LORA=1 $NSYS profile --cuda-graph-trace=node -o /tmp/fuselora-nsys -f true --stats=false \
    node --import tsx bench/cuda/decode.ts --model $B8/model --adapters $B8/adapters --steps 12 --backends csgmv --batches 1 \
    --scenarios shared --no-prefill --cuda-graph-max-bs 128 --label nsys
  [[ -f /tmp/fuselora-nsys.nsys-rep ]] && timeout 20 $NSYS stats -r cuda_gpu_kern_sum -f csv -o "$OUT/nsys-skinny" /tmp/fuselora-nsys.nsys-rep > "$OUT/nsys-stats.log" 2>&1
fi
log "run done"
