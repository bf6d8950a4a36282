#!/usr/bin/env bash
# Issue 17, the int8 CPU LoRA pool against the bf16 one: single-stream decode LoRA cost at ranks 16 and 64 on the
# synthetic 125M-class Llama (bench/native/pool-dtypes.ts), several processes in a row, each alternating every
# (rank, dtype) runner round by round; then one decode.ts run per pool dtype for the other variants it prints.
# Usage: bench/results/cpu/issue17-int8-pool/run.sh [processes (3)] [rounds (12)] [steps (12)]
set -euo pipefail
cd "$(dirname "$0")/../../../.."
out=bench/results/cpu/issue17-int8-pool/raw
mkdir -p "$out"
for i in $(seq 1 "${1:-3}"); do
  node --import tsx bench/native/pool-dtypes.ts --preset 125m --ranks 16,64 --dtypes bf16,int8 --rounds "${2:-12}" --steps "${3:-12}" \
    --kv-cache-dtype bf16 --out "$out/pool-dtypes-$i.json" | tee "$out/pool-dtypes-$i.txt"
done
for dtype in bf16 int8; do
  node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype "$dtype" --kv-cache-dtype bf16 --steps 30 \
    --batch8-rounds 0 --prefill-rounds 1 --out "$out/decode-$dtype.json" | tee "$out/decode-$dtype.txt"
done
