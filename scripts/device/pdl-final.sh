#!/usr/bin/env bash
# Issue #12 (launch gaps): decode step time with the engine's launch switches off / on, one process per setting (the
# switches are read once), graphs on, csgmv, interleaved, on the idle GPU after the GPU tests. ≤ 60 s (BUDGET_S).
# Run from the repository root after the CUDA addon is built; logs and summary.txt in "$FINAL_OUT/pdl/".
#   off        everything plain: TSLORA_CUDA_PDL=0, no fused epilogues, no L2 prefetch (the engine before this work)
#   pdl        TSLORA_CUDA_PDL=1 only
#   fused      PDL + TSLORA_CUDA_FUSED_SWIGLU=1 + TSLORA_CUDA_FUSED_QKV_ROPE=1
#   all        fused + TSLORA_CUDA_SKINNY_PREFETCH=1
# Models: a synthetic Llama-3.2-1B (16 layers, written here in ~3 s) and, when /tmp/tslora-bench-8b/ready exists,
# the suite's synthetic Llama-3.1-8B. Batches 1, 2, 8 (the skinny GEMM's rows; larger batches go to cuBLAS).
set -u
OUT="${FINAL_OUT:-/tmp/tslora-final}/pdl"
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-58}
T0=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
log() { echo "[pdl-final $(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | sed 's/^/GPU: /' | tee -a "$OUT/summary.txt"

B1=/tmp/pdl-final-1b
rm -rf "$B1"
timeout 20 bash -c "node bin/tslora.js synth model --shape llama-3.2-1b --out $B1/model && \
  node bin/tslora.js synth adapters --model $B1/model --count 8 --rank 16 --targets all --out $B1/adapters" > "$OUT/synth-1b.log" 2>&1
log "synth 1B: rc=$?"

OFF=(TSLORA_CUDA_PDL=0 TSLORA_CUDA_FUSED_SWIGLU=0 TSLORA_CUDA_FUSED_QKV_ROPE=0 TSLORA_CUDA_SKINNY_PREFETCH=0)
PDL=(TSLORA_CUDA_PDL=1 TSLORA_CUDA_FUSED_SWIGLU=0 TSLORA_CUDA_FUSED_QKV_ROPE=0 TSLORA_CUDA_SKINNY_PREFETCH=0)
FUSED=(TSLORA_CUDA_PDL=1 TSLORA_CUDA_FUSED_SWIGLU=1 TSLORA_CUDA_FUSED_QKV_ROPE=1 TSLORA_CUDA_SKINNY_PREFETCH=0)
ALL=(TSLORA_CUDA_PDL=1 TSLORA_CUDA_FUSED_SWIGLU=1 TSLORA_CUDA_FUSED_QKV_ROPE=1 TSLORA_CUDA_SKINNY_PREFETCH=1)
# run LABEL LIMIT_S DIR SCENARIOS ENV...: one decode.ts process, skipped when the budget is spent
run() {
  local label=$1 lim=$2 dir=$3 scenarios=$4; shift 4
  local rem; rem=$(( $(left) - 2 ))
  if (( rem < 4 )); then log "$label: SKIPPED (budget spent)"; return; fi
  (( lim > rem )) && lim=$rem
  timeout --kill-after=2 "$lim" env "$@" node --import tsx bench/cuda/decode.ts --model "$dir/model" --adapters "$dir/adapters" \
    --steps 20 --backends csgmv --batches 1,2,8 --scenarios "$scenarios" --no-prefill --cuda-graph-max-bs 128 --label "$label" \
    --json "$OUT/decode-$label.json" > "$OUT/decode-$label.log" 2>&1
  log "$label: rc=$?"
}
if [[ -d $B1/adapters ]]; then
  run 1b-off 8 "$B1" base,shared "${OFF[@]}"
  run 1b-pdl 8 "$B1" base,shared "${PDL[@]}"
  run 1b-fused 8 "$B1" base,shared "${FUSED[@]}"
  run 1b-all 8 "$B1" base,shared "${ALL[@]}"
fi
B8=/tmp/tslora-bench-8b
if [[ -f $B8/ready ]]; then
  run 8b-off 12 "$B8" base "${OFF[@]}"
  run 8b-all 12 "$B8" base "${ALL[@]}"
  run 8b-fused 12 "$B8" base "${FUSED[@]}"
  run 8b-pdl 12 "$B8" base "${PDL[@]}"
else
  log "8B: $B8/ready missing, skipped"
fi
[[ -d $B1/adapters ]] && run 1b-off-again 8 "$B1" base,shared "${OFF[@]}" && run 1b-all-again 8 "$B1" base,shared "${ALL[@]}"
rm -rf "$B1"
grep -h "^decode" "$OUT"/decode-*.log | tee -a "$OUT/summary.txt"
log "done"
