#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS, like side-priority-ab.sh): the prefill LoRA switches of session 21 against
# the defaults, each backend in ONE process (bench/cuda/side-expand-ab.ts --prefill): 8 prompts × 512 tokens on the 8B
# model, without adapters and with 8 distinct r16 adapters, rotating order.
#  - triton (one segment per prompt: the wide expand): in-place expand vs store-first (TSLORA_CUDA_LORA_STORE_FIRST=1)
#    vs store-first with session 22's wide shrink (m128k32 tile, cluster split-K: the pool reads those switches at
#    construction, so they A/B in one process too);
#  - csgmv, chunks of 16 (the default backend): chunks as they are vs coalesced into one segment per adapter run
#    (TSLORA_CUDA_LORA_CSGMV_COALESCE=1, so the wide expand runs) vs coalesced + store-first.
# First the cuBLAS beta = 0 / 1 microbenchmark of the 8B prefill projections (what store-first adds to them).
# Writes $AB_OUT/gemm-accumulate.{log,json}, $AB_OUT/ab-store-{triton,csgmv}.{log,json} and one line per part to
# $AB_OUT/combo.log. Up to three 8B copies: ~48 GB of GPU memory.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; B8=/tmp/tslora-bench-8b; T0=$(date +%s)
for _ in $(seq 1 60); do grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null && break; sleep 1; done
declare -A variants=(
  [triton]="inplace:TSLORA_CUDA_LORA_STORE_FIRST=0,TSLORA_CUDA_LORA_WIDE_SHRINK=0;store:TSLORA_CUDA_LORA_STORE_FIRST=1,TSLORA_CUDA_LORA_WIDE_SHRINK=0;store+m128k32c:TSLORA_CUDA_LORA_STORE_FIRST=1,TSLORA_CUDA_LORA_WIDE_SHRINK=1,TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=m128k32,TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER=1"
  [csgmv]="chunks:TSLORA_CUDA_LORA_CSGMV_COALESCE=0;coalesce:TSLORA_CUDA_LORA_CSGMV_COALESCE=1;coalesce+store:TSLORA_CUDA_LORA_CSGMV_COALESCE=1,TSLORA_CUDA_LORA_STORE_FIRST=1"
)
# The projections' own share (bench/cuda/gemm-accumulate-bench.cu): cuBLAS beta = 0 vs 1 at the prefill's 4096 rows.
nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -Inative/src/cuda/test -Ibench/lora bench/cuda/gemm-accumulate-bench.cu \
  bench/lora/bench_fill.cu -lcublas -o /tmp/tslora-gab \
  > "$R/gemm-accumulate.log" 2>&1 && /tmp/tslora-gab 4096 "$R/gemm-accumulate.json" >> "$R/gemm-accumulate.log" 2>&1
echo "gemm accumulate rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
for backend in ${STORE_AB_BACKENDS:-triton csgmv}; do
  node --import tsx bench/cuda/side-expand-ab.ts --model $B8/model --adapters $B8/adapters --backend "$backend" \
    --cuda-graph-max-bs 128 --scenarios '' --prefill "${STORE_AB_PREFILL:-8x512}" --rounds "${AB_ROUNDS:-5}" --prefill-steps 3 \
    --variants "${variants[$backend]}" --markdown --json "$R/ab-store-$backend.json" > "$R/ab-store-$backend.log" 2>&1
  echo "ab store $backend rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
done
exit 0
