#!/usr/bin/env bash
# smallexp2's device round (#12, decode small-step pair v11 A/B). bash round.sh build|run; ROUND_OUT, ROUND_LIMIT_S.
set -u
PH=${1:-run}
O=${ROUND_OUT:-/tmp/smallexp2-out}; mkdir -p "$O"
B=/tmp/smallexp2-build
LIMIT=${ROUND_LIMIT_S:-110}
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
p() { echo "[$(el) s] $*" | tee -a "$O/progress-$PH.txt"; }
left() { local l=$(( LIMIT - 4 - $(el) )); [ $l -lt 1 ] && l=1; echo $l; }
if [ "$PH" = build ]; then
  p "build"
  ( nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a bench/cuda/bandwidth.cu -o $B-bw > "$O/bw-build.log" 2>&1; echo "bw rc=$?" >> "$O/bw-build.log" ) &
  OUT=$O/lora PHASE=build LORA_BUILD_DIR=$B timeout 190 bash bench/lora/device-run.sh > "$O/lora-build.log" 2>&1
  p "lora build rc=$?"; wait
  ls -la $B/lora_cuda_bench $B/lora_cuda_test $B/lora_device_pool_test $B-bw >> "$O/progress-build.txt" 2>&1
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv > "$O/gpu.txt" 2>&1; cat "$O/gpu.txt"
BW=0
if [ -x $B-bw ]; then
  p "bandwidth"; timeout 10 $B-bw "$O/bandwidth.json" > "$O/bandwidth.log" 2>&1
  BW=$(python3 -c "import json;print(json.load(open('$O/bandwidth.json'))['readBytesPerS'])" 2>/dev/null || echo 0)
fi
p "bench (bw $BW)"
TSLORA_BANDWIDTH_BYTES_PER_S=$BW LORA_BENCH_CASES="decode 64x1 r16,decode 1x1 r16" LORA_BENCH_NO_SWEEPS=1 LORA_BENCH_EXPAND_SWEEP=1 \
  LORA_BENCH_STRATEGIES="csgmv C16,csgmv small v10,csgmv small v11n,csgmv small v11k,csgmv small v11e,csgmv small v11nk,csgmv small v11,csgmv small v10 s8,csgmv small v11j,csgmv small v11jk" \
  timeout 40 $B/lora_cuda_bench "$O/lora-bench.json" > "$O/lora-bench.log" 2>&1; p "bench rc=$?"
grep -E "LAYER|graph chain" "$O/lora-bench.log" | cut -c1-170
# Correctness: the narrow shrink and the joined launch must give the default's bits (the same digest over the same
# path filter); the v11 switches against the CPU twin (kernel driver: small-step paths; device pool: every case).
kt() {  # kt NAME PATHS [ENV=VAL ...]
  local name=$1 paths=$2; shift 2
  p "kernel test $name ($paths) $*"
  env "$@" LORA_TEST_PATHS="$paths" timeout $(left) $B/lora_cuda_test > "$O/kt-$name.log" 2>&1
  p "rc=$? $(grep -E 'cases passed|digest' "$O/kt-$name.log" | tr '\n' ' ')"; grep -m3 FAIL "$O/kt-$name.log"
}
pool() {  # pool NAME [ENV=VAL ...]
  local name=$1; shift
  p "device pool test $name $*"
  env "$@" timeout $(left) $B/lora_device_pool_test > "$O/pool-$name.log" 2>&1
  p "rc=$? $(tail -1 "$O/pool-$name.log")"; grep -m3 FAIL "$O/pool-$name.log"
}
# The correctness runs in parallel (the GPU is ours; the bench above ran alone): each one's timeout is what is left.
kt default small &
kt joined small TSLORA_CUDA_LORA_SMALL_JOINED=1 &
kt narrow small TSLORA_CUDA_LORA_SMALL_NARROW=1 &
pool joined TSLORA_CUDA_LORA_SMALL_JOINED=1 TSLORA_CUDA_LORA_SMALL_LONGK=1 &
pool v11 TSLORA_CUDA_LORA_SMALL_NARROW=1 TSLORA_CUDA_LORA_SMALL_LONGK=1 TSLORA_CUDA_LORA_SMALL_EARLY=1 &
kt v11 "small,small/1 split,small/3 splits" TSLORA_CUDA_LORA_SMALL_NARROW=1 TSLORA_CUDA_LORA_SMALL_LONGK=1 TSLORA_CUDA_LORA_SMALL_EARLY=1 &
kt joined-longk "small,small/3 splits" TSLORA_CUDA_LORA_SMALL_JOINED=1 TSLORA_CUDA_LORA_SMALL_LONGK=1 &
wait
for f in "$O"/kt-*.log; do echo "$(basename $f): $(grep -E 'cases passed|digest' $f | tr '\n' ' ')"; done | tee -a "$O/progress-run.txt"
p done
