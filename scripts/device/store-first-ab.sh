#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS, like side-priority-ab.sh): the store-first prefill LoRA
# (TSLORA_CUDA_LORA_STORE_FIRST=1, forward.cu) against the in-place expand, in ONE process (bench/cuda/side-expand-ab.ts
# --prefill): 8 prompts × 512 tokens on the 8B model, without adapters and with 8 distinct r16 adapters, the triton
# backend (one segment per prompt: the wide expand, where the store form exists), rotating order. Writes
# $AB_OUT/ab-store.{log,json} and one line to $AB_OUT/combo.log. Two 8B copies: ~32 GB of GPU memory.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; B8=/tmp/tslora-bench-8b; T0=$(date +%s)
for _ in $(seq 1 60); do grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null && break; sleep 1; done
node --import tsx bench/cuda/side-expand-ab.ts --model $B8/model --adapters $B8/adapters --backend triton \
  --cuda-graph-max-bs 128 --scenarios '' --prefill "${STORE_AB_PREFILL:-8x512}" --rounds "${AB_ROUNDS:-5}" --prefill-steps 3 \
  --variants "${STORE_AB_VARIANTS:-inplace:TSLORA_CUDA_LORA_STORE_FIRST=0;store:TSLORA_CUDA_LORA_STORE_FIRST=1}" \
  --markdown --json "$R/ab-store.json" > "$R/ab-store.log" 2>&1
echo "ab store rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
exit 0
