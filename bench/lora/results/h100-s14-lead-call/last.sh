#!/usr/bin/env bash
# Lead's last device call of session 14 (~175 s): main's LoRA kernels only (no Node): prefill's wide tiled kernels and
# smallexp's v10 small-step kernels (bench A/B + CPU-twin tests with the switches on), fuseshrink's skinny-LoRA driver.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
O=$OUT; p() { echo "[$(el) s] $*" | tee -a $O/progress.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv > $O/gpu.txt 2>&1; cat $O/gpu.txt
B=/tmp/lb; E=native/src/cuda/engine
( OUT=$O/lora PHASE=build LORA_BUILD_DIR=$B timeout 80 bash bench/lora/device-run.sh > $O/lora-build.log 2>&1; echo "lora build rc=$? at $(el) s" >> $O/progress.txt ) &
LB=$!
( nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a bench/cuda/bandwidth.cu -o /tmp/bw > $O/bw-build.log 2>&1 ) &
( mkdir -p /tmp/so; INC="-Inative/include -Inative/src/cuda -Inative/src/lora -I$E -I$E/test"
  NVF="-std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a --expt-relaxed-constexpr"; pids=()
  for s in $E/test/skinny-lora-test.cu $E/skinny-gemm.cu $E/kernels.cu native/src/cuda/lora_small_shrink.cu native/src/cuda/lora_small_expand.cu; do
    timeout 120 nvcc $NVF $INC -c $s -o /tmp/so/$(basename $s .cu).o > $O/skinny-$(basename $s .cu).log 2>&1 & pids+=($!); done
  rc=0; for q in "${pids[@]}"; do wait $q || rc=1; done
  [ $rc = 0 ] && nvcc $NVF /tmp/so/*.o -o /tmp/skinny-lora-test > $O/skinny-link.log 2>&1; echo "skinny driver build rc=$? at $(el) s" >> $O/progress.txt ) &
SK=$!
wait $LB
p "bandwidth"; timeout 12 /tmp/bw $O/bandwidth.json > $O/bandwidth.log 2>&1; cat $O/bandwidth.json
BW=$(python3 -c "import json;print(json.load(open('$O/bandwidth.json'))['readBytesPerS'])" 2>/dev/null || echo 0)
p "bench"
TSLORA_BANDWIDTH_BYTES_PER_S=$BW LORA_BENCH_CASES="prefill 8x512 r64,decode 64x1 r16,decode 1x1 r16" LORA_BENCH_NO_SWEEPS=1 \
  LORA_BENCH_STRATEGIES="triton,triton wide shrink,triton wide expand,triton wide,csgmv C128,csgmv C128 wide,csgmv C16,csgmv graph,csgmv graph C16,csgmv small,csgmv small v10,csgmv small v10r" \
  timeout 40 $B/lora_cuda_bench $O/lora-bench.json > $O/lora-bench.log 2>&1; p "bench rc=$?"
sed -n '/==== summary/,$p' $O/lora-bench.log
p "kernel test, wide tiled paths"
LORA_TEST_PATHS="tiled/wide shrink,tiled/wide" timeout 25 $B/lora_cuda_test > $O/kt-wide.log 2>&1; p "rc=$? $(grep -E 'cases' $O/kt-wide.log | tail -1)"; grep FAIL $O/kt-wide.log | head -5
p "kernel test, small v10 + reduce"
TSLORA_CUDA_LORA_SMALL_V10=1 TSLORA_CUDA_LORA_SMALL_REDUCE=1 LORA_TEST_PATHS="small,small/1 split,small/3 splits" timeout 25 $B/lora_cuda_test > $O/kt-v10.log 2>&1; p "rc=$? $(grep -E 'cases' $O/kt-v10.log | tail -1)"; grep FAIL $O/kt-v10.log | head -5
p "pool test, wide on"
TSLORA_CUDA_LORA_WIDE_SHRINK=1 TSLORA_CUDA_LORA_WIDE_EXPAND=1 timeout 15 $B/lora_device_pool_test > $O/pool-wide.log 2>&1; p "rc=$? $(tail -1 $O/pool-wide.log)"
p "pool test, v10 + reduce"
TSLORA_CUDA_LORA_SMALL_V10=1 TSLORA_CUDA_LORA_SMALL_REDUCE=1 timeout 15 $B/lora_device_pool_test > $O/pool-v10.log 2>&1; p "rc=$? $(tail -1 $O/pool-v10.log)"
wait $SK
if [ -x /tmp/skinny-lora-test ] && (( $(el) < 160 )); then p "skinny driver --bench"; timeout $(( 172 - $(el) )) /tmp/skinny-lora-test --bench > $O/skinny.log 2>&1; p "rc=$?"; grep -E "cases|fail|FAIL|^bench|us" $O/skinny.log | head -30; fi
p done
