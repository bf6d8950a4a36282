#!/usr/bin/env bash
# GPU check of session 16's deletions in the small-step LoRA pair (the joined launch and the shrink's reduction; the
# default kernels' code changed only by what was removed, ptxas registers 150 -> 144 in the 8-tile shrink) and of the
# 1B parity test's 45-token prompt; written for session 16's device round (which never ran: no machine came).
# What it checks: lora_cuda_test's small-step digest over "small,small/1 split,small/3 splits" must equal session 15's
# ecb91b301f084749 (bit-identical pair); lora_device_pool_test with the pair and with TSLORA_CUDA_LORA_FUSED=1; the 1B
# PEFT parity test (reference made in the build phase); then, if time is left, lora_cuda_bench "csgmv small v11"
# 64x1 / 1x1 against the kernels before the deletions, alternating in one run phase.
# The base kernels come from a tarball made before the export (there is no git on the device):
#   git archive --prefix=mend-base/ 5d7caa8 native bench/lora/lora_cuda_bench.cpp bench/lora/bench_fill.cu \
#     bench/lora/bench_fill.h bench/lora/device-run.sh | gzip > mend-base.tar.gz      (repo root, untracked)
# Usage (repo root, a device round): bash bench/lora/small-step-check.sh build|run, with ROUND_OUT and ROUND_LIMIT_S.
set -u
PH=${1:-run}
O=${ROUND_OUT:-/tmp/mend-out}; mkdir -p "$O"
B=/tmp/mend-build; BB=/tmp/mend-base-build; REF=/tmp/mend-1b
LIMIT=${ROUND_LIMIT_S:-150}
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
p() { echo "[$(el) s] $*" | tee -a "$O/progress-$PH.txt"; }
left() { local l=$(( LIMIT - 5 - $(el) )); [ $l -lt 1 ] && l=1; echo $l; }
if [ "$PH" = build ]; then
  p "build (nproc $(nproc))"
  mkdir -p $BB
  ( OUT=$O/lora PHASE=build LORA_BUILD_DIR=$B timeout 190 nice -n 5 bash bench/lora/device-run.sh > "$O/lora-build.log" 2>&1
    p "lora drivers (this tree) rc=$?" ) &
  ( rm -rf /tmp/mend-base && tar -xzf mend-base.tar.gz -C /tmp && cd /tmp/mend-base &&
    NV="nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -Inative/include -Inative/src/lora -Inative/src/lora/test -Inative/src/cuda -Inative/src/cuda/test -Ibench/lora -Xcompiler -pthread"
    for f in lora_shrink lora_expand lora_embed lora_small_shrink lora_small_expand lora_small_joined lora_small_fused; do
      timeout 185 nice -n 15 $NV -c native/src/cuda/$f.cu -o $BB/$f.o > $BB/$f.log 2>&1 &
    done
    timeout 185 nice -n 15 $NV -c bench/lora/bench_fill.cu -o $BB/bench_fill.o > $BB/bench_fill.log 2>&1 &
    timeout 185 nice -n 15 $NV -c bench/lora/lora_cuda_bench.cpp -o $BB/lora_cuda_bench.o > $BB/bench.log 2>&1 &
    wait
    $NV $BB/*.o -o $BB/lora_cuda_bench > $BB/link.log 2>&1
    p "base bench (5d7caa8) rc=$?"; cat $BB/*.log > "$O/base-build.log" ) &
  ( timeout 190 node scripts/build-cuda-addon.mjs --jobs 8 > "$O/addon-build.log" 2>&1; p "CUDA addon rc=$?" ) &
  ( timeout 190 python3 scripts/device/make-1b-reference.py --out $REF --layers 4 > "$O/make-1b-reference.log" 2>&1
    p "1B reference rc=$?" ) &
  wait
  ls -la $B/lora_cuda_bench $B/lora_cuda_test $B/lora_device_pool_test $BB/lora_cuda_bench build-cuda/Release/tslora_cuda.node $REF/reference.json >> "$O/progress-build.txt" 2>&1
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv > "$O/gpu.txt" 2>&1; cat "$O/gpu.txt"
# 1. Correctness, all at once (the GPU is ours): the small-step pair's digest over session 15's path filter must be
# ecb91b301f084749 (session 15's run with narrow + long-K + early on, the defaults now); the device pool with the pair
# and with the fused kernel; the 1B parity test (CUDA engine vs PyTorch + PEFT) with the 45-token prompt.
kt() {  # kt NAME PATHS
  p "kernel test $1 ($2)"
  LORA_TEST_PATHS="$2" timeout $(left) $B/lora_cuda_test > "$O/kt-$1.log" 2>&1
  p "kt $1 rc=$? $(grep -E 'cases passed|digest' "$O/kt-$1.log" | tr '\n' ' ')"; grep -m3 FAIL "$O/kt-$1.log"
}
pool() {  # pool NAME [ENV=VAL ...]
  local name=$1; shift
  env "$@" timeout $(left) $B/lora_device_pool_test > "$O/pool-$name.log" 2>&1
  p "pool $name rc=$? $(tail -1 "$O/pool-$name.log")"; grep -m3 FAIL "$O/pool-$name.log"
}
parity() {
  p "parity 1B (prompts $(python3 -c "import json;print([len(x) for x in json.load(open('$REF/reference.json'))['prompts']])"))"
  TSLORA_1B_REFERENCE=$REF/reference.json timeout $(( $(left) > 40 ? $(left) - 20 : $(left) )) node scripts/run-tests.mjs test/gpu/cuda-parity-1b.test.ts > "$O/parity-1b.log" 2>&1
  p "parity rc=$? $(grep -E '^# (pass|fail)' "$O/parity-1b.log" | tr '\n' ' ')"
  grep -E "cuda-parity-1b" "$O/parity-1b.log" | cut -c1-220 >> "$O/progress-run.txt"
}
if [ -f build-cuda/Release/tslora_cuda.node ] && [ -f $REF/reference.json ]; then parity & PARITY=$!
else p "parity 1B skipped (addon or reference missing)"; PARITY=; fi
if [ -x $B/lora_cuda_test ]; then
  kt small-s15 "small,small/1 split,small/3 splits" & K1=$!
  pool default & K2=$!
  pool fused TSLORA_CUDA_LORA_FUSED=1 & K3=$!
  wait $K1 $K2 $K3
fi
[ -n "$PARITY" ] && wait $PARITY
# 2. Kernel bench alone on the GPU (if time is left): this tree against main 5d7caa8's kernels (joined + reduction still compiled in),
# alternating; this tree alone when the base did not build (compare with session 15's 39.5 / 17.9 µs then).
bench() {  # bench NAME BINARY
  LORA_BENCH_CASES="decode 64x1 r16,decode 1x1 r16" LORA_BENCH_NO_SWEEPS=1 LORA_BENCH_STRATEGIES="csgmv small v11,csgmv small v10" \
    timeout $(( $(left) < 25 ? $(left) : 25 )) $2 "$O/bench-$1.json" > "$O/bench-$1.log" 2>&1
  p "bench $1 rc=$? $(grep -E 'LAYER' "$O/bench-$1.log" | tr -s ' ' | tr '\n' '|' | cut -c1-400)"
}
if [ -x $B/lora_cuda_bench ]; then
  if [ -x $BB/lora_cuda_bench ]; then bench base1 $BB/lora_cuda_bench; fi
  bench mine1 $B/lora_cuda_bench
  if [ -x $BB/lora_cuda_bench ]; then bench base2 $BB/lora_cuda_bench; bench mine2 $B/lora_cuda_bench; fi
fi
p done
