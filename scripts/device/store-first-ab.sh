#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS, like side-priority-ab.sh): the prefill LoRA switches of sessions 21-22 (on by
# default since session 23) against the defaults before them, each backend in ONE process (bench/cuda/side-expand-ab.ts
# --prefill; the pool reads its switches at construction, the model its store-first switch): 8 prompts × 512 tokens on
# the 8B model, without adapters and with 8 distinct r16 adapters, rotating order.
#  - triton: before (in-place expand, v5 shrink) vs the defaults (store-first, wide shrink m64k64) vs the defaults with
#    the lean store expand (TSLORA_CUDA_LORA_STORE_LEAN=1, session 24);
#  - csgmv, chunks of 16 (the default backend): before (chunks: two engine passes at 8 × 512, in place, v5 shrink) vs the
#    defaults (coalesced into one pass, store-first, m64k64) vs the defaults with the lean store expand.
# (Each variant's model is built under its own switches only: bench/cuda/ab-variants.ts constructUnderVariantEnv.
# Before session 24 a variant inherited the switches of the ones before it, which voided session 24's first A/B.)
# First the cuBLAS beta = 0 / 1 microbenchmark of the 8B prefill projections (what store-first adds to them).
# Writes $AB_OUT/gemm-accumulate.{log,json}, $AB_OUT/ab-store-{triton,csgmv}.{log,json} and one line per part to
# $AB_OUT/combo.log. Up to four 8B copies: ~64 GB of GPU memory.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; B8=/tmp/tslora-bench-8b; T0=$(date +%s)
for _ in $(seq 1 60); do grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null && break; sleep 1; done
# Since session 23 the three are on by default: "before" turns them all off (session 22's defaults), "default" sets
# none, "lean" adds the opt-in lean store expand and "leanf" the m64k64f shrink tile to it (session 25).
# STORE_AB_VARIANTS_<backend> replaces a backend's list.
declare -A variants=(
  [triton]=${STORE_AB_VARIANTS_triton:-"before:TSLORA_CUDA_LORA_STORE_FIRST=0,TSLORA_CUDA_LORA_WIDE_SHRINK=0;default:;lean:TSLORA_CUDA_LORA_STORE_LEAN=1;leanf:TSLORA_CUDA_LORA_STORE_LEAN=1,TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=m64k64f"}
  [csgmv]=${STORE_AB_VARIANTS_csgmv:-"before:TSLORA_CUDA_LORA_CSGMV_COALESCE=0,TSLORA_CUDA_LORA_STORE_FIRST=0,TSLORA_CUDA_LORA_WIDE_SHRINK=0;default:;lean:TSLORA_CUDA_LORA_STORE_LEAN=1;leanf:TSLORA_CUDA_LORA_STORE_LEAN=1,TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=m64k64f"}
)
# The projections' own share (bench/cuda/gemm-accumulate-bench.cu): cuBLAS beta = 0 vs 1 at the prefill's 4096 rows.
nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -Inative/src/cuda/test -Ibench/lora bench/cuda/gemm-accumulate-bench.cu \
  bench/lora/bench_fill.cu -lcublas -o /tmp/tslora-gab \
  > "$R/gemm-accumulate.log" 2>&1 && /tmp/tslora-gab 4096 "$R/gemm-accumulate.json" >> "$R/gemm-accumulate.log" 2>&1
echo "gemm accumulate rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
for backend in ${STORE_AB_BACKENDS-triton csgmv}; do  # STORE_AB_BACKENDS="" : the beta = 1 figures alone
  node --import tsx bench/cuda/side-expand-ab.ts --model $B8/model --adapters $B8/adapters --backend "$backend" \
    --cuda-graph-max-bs 128 --scenarios '' --prefill "${STORE_AB_PREFILL:-8x512}" --rounds "${AB_ROUNDS:-5}" --prefill-steps 3 \
    --variants "${variants[$backend]}" --markdown --json "$R/ab-store-$backend.json" > "$R/ab-store-$backend.log" 2>&1
  echo "ab store $backend rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
done
exit 0
