#!/usr/bin/env bash
# Issue 17, round 2 of the int8 CPU LoRA pool: the final single-stream decode LoRA cost (bench/native/pool-dtypes.ts,
# like ../run.sh) in N processes, each followed by one with round 1's int8 defaults emulated in the same build
# (fused-expand GEMM chunks from 16 KiB of Bᵀ per thread, int8 expand prefetch 4 KiB: TSLORA_LORA_EXPAND_PREFETCH_BYTES
# 8192 halved for int8 panels; that process's bf16 rows are therefore not round 1's bf16 and are not reported).
# Usage: bench/results/cpu/issue17-int8-pool/round2/run.sh [processes (4)] [rounds (16)] [steps (12)]
set -euo pipefail
cd "$(dirname "$0")/../../../../.."
out=bench/results/cpu/issue17-int8-pool/round2/raw
mkdir -p "$out"
for i in $(seq 1 "${1:-4}"); do
  node --import tsx bench/native/pool-dtypes.ts --preset 125m --ranks 16,64 --dtypes bf16,int8 --rounds "${2:-16}" --steps "${3:-12}" \
    --kv-cache-dtype bf16 --out "$out/pool-dtypes-$i.json" | tee "$out/pool-dtypes-$i.txt"
  TSLORA_LORA_EXPAND_PREFETCH_BYTES=8192 node --import tsx bench/native/pool-dtypes.ts --preset 125m --ranks 16,64 --dtypes int8 \
    --rounds "${2:-16}" --steps "${3:-12}" --kv-cache-dtype bf16 --epilogue-min-chunk-kib 16 --out "$out/round1-defaults-$i.json" \
    | tee "$out/round1-defaults-$i.txt"
done
