#!/usr/bin/env bash
# One GPU-machine call: build the CUDA LoRA kernels, benchmark them with Llama-3.1-8B shapes, check them against
# their CPU twins (the device pool with the small-step pair and with the opt-in fused kernel; compute-sanitizer on a quick
# subset), and run the PyTorch baseline. Logs and JSON go to $OUT.
# Needs nvcc and g++ only (no Node). Usage (repo root): OUT=/some/dir [SKIP_TORCH=1] [SKIP_MEMCHECK=1] [SKIP_KERNEL_TESTS=1]
# [TSLORA_BANDWIDTH_BYTES_PER_S=measured] [PHASE=build|run] [LORA_BUILD_DIR=/tmp/lora-build] bash bench/lora/device-run.sh
# PHASE=build only builds the drivers and the benchmark into LORA_BUILD_DIR, PHASE=run only runs what is there
# (a device round's build and run phases); unset: both.
set -u
OUT=${OUT:-/tmp/lora-device-out}
B=${LORA_BUILD_DIR:-/tmp/lora-build}
PHASE=${PHASE:-all}
mkdir -p "$OUT" "$B"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv > "$OUT/gpu.txt" 2>&1
nvcc --version | tail -1 >> "$OUT/gpu.txt"
INC="-Inative/include -Inative/src/lora -Inative/src/lora/test -Inative/src/cuda -Inative/src/cuda/test -Ibench/lora"
NV="nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90 $INC -Xcompiler -pthread"
start=$(date +%s)
if [ "$PHASE" != run ]; then
# The LoRA kernels' units: every native/src/cuda/lora_*.cu but the device pool's two (as test/gpu/lora-kernels takes them).
KERNEL_UNITS=$(ls native/src/cuda/lora_*.cu | grep -v -e /lora_device_pool.cu -e /lora_host_image.cu)
for f in $KERNEL_UNITS bench/lora/bench_fill.cu \
         native/src/lora/host_adapter.cpp native/src/lora/lora_pool.cpp native/src/lora/lora_apply.cpp native/src/lora/cpu_expand.cpp native/src/lora/cpu_expand_avx512.cpp \
         native/src/lora/test/test_thread_pool.cpp native/src/cuda/test/lora_cuda_test.cpp bench/lora/lora_cuda_bench.cpp \
         native/src/cuda/lora_device_pool.cu native/src/cuda/lora_host_image.cu native/src/cuda/test/lora_device_pool_test.cpp; do
  o="$B/$(basename "${f%.*}").o"
  if [[ $f == *.cu ]]; then $NV -Xptxas -v -c "$f" -o "$o" > "$B/$(basename "$f").log" 2>&1 &
  else $NV -c "$f" -o "$o" > "$B/$(basename "$f").log" 2>&1 & fi
done
wait
cat "$B"/*.log > "$OUT/build.log"
KERNELS=$(for f in $KERNEL_UNITS; do echo "$B/$(basename "${f%.*}").o"; done)
$NV "$B"/host_adapter.o "$B"/lora_pool.o "$B"/lora_apply.o "$B"/cpu_expand.o "$B"/cpu_expand_avx512.o "$B"/test_thread_pool.o "$B"/lora_cuda_test.o \
    $KERNELS -o "$B/lora_cuda_test" >> "$OUT/build.log" 2>&1
$NV "$B"/host_adapter.o "$B"/lora_pool.o "$B"/lora_apply.o "$B"/cpu_expand.o "$B"/cpu_expand_avx512.o "$B"/test_thread_pool.o "$B"/lora_device_pool_test.o \
    "$B"/lora_device_pool.o "$B"/lora_host_image.o $KERNELS -o "$B/lora_device_pool_test" >> "$OUT/build.log" 2>&1
$NV "$B"/lora_cuda_bench.o "$B"/bench_fill.o $KERNELS -o "$B/lora_cuda_bench" >> "$OUT/build.log" 2>&1
echo "build: $(( $(date +%s) - start )) s" | tee -a "$OUT/build.log"
grep -E "error|registers|spill" "$OUT/build.log" | sort | uniq -c | head -20
fi
[ "$PHASE" = build ] && exit 0

# The benchmark first: its figures are what scripts/device/step-targets.sh reads, and the drivers' time varies.
echo "== benchmark"; timeout 120 "$B/lora_cuda_bench" "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "bench rc=$?"
sed -n '/==== summary/,$p' "$OUT/bench.log"
if [ "${SKIP_KERNEL_TESTS:-0}" != 1 ]; then
  echo "== kernel test vs CPU twin"; timeout 120 "$B/lora_cuda_test" 2>&1 | tee "$OUT/test.log" | tail -15
  # The defaults: a caller's exported opt-in switches (e.g. prefill-round.sh's coalescing) are left out of this run.
  echo "== device pool vs CPU pool"; timeout 60 env -u TSLORA_CUDA_LORA_CSGMV_COALESCE -u TSLORA_CUDA_LORA_WIDE_SHRINK \
    -u TSLORA_CUDA_LORA_WIDE_SHRINK_TILE -u TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER -u TSLORA_CUDA_LORA_FUSED -u TSLORA_CUDA_LORA_STORE_LEAN \
    "$B/lora_device_pool_test" 2>&1 | tee "$OUT/device-pool-test.log" | tail -8
  # SKIP_POOL_VARIANTS=1 (a round that tests other switches): the two opt-in pool runs below are left out.
  if [ "${SKIP_POOL_VARIANTS:-0}" != 1 ]; then
  echo "== device pool vs CPU pool, the fused small-step kernel instead of the pair (TSLORA_CUDA_LORA_FUSED=1)"
  TSLORA_CUDA_LORA_FUSED=1 timeout 60 "$B/lora_device_pool_test" 2>&1 | tee "$OUT/device-pool-test-fused.log" | tail -3
  echo "== device pool vs CPU pool, the wide prefill shrink m128k32 with the cluster split-K (session 22, opt-in)"
  TSLORA_CUDA_LORA_WIDE_SHRINK=1 TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=m128k32 TSLORA_CUDA_LORA_WIDE_SHRINK_CLUSTER=1 timeout 60 \
    "$B/lora_device_pool_test" 2>&1 | tee "$OUT/device-pool-test-wide-cluster.log" | tail -3
  fi
  # LORA_LEAN_CHECKS=1 (session 24): the store-form expand's lean layout (TSLORA_CUDA_LORA_STORE_LEAN, opt-in): the
  # kernel test's store checks and the device pool with it on, and racecheck over the quick subset (its one staging
  # tile is shared by the warps' rows between block barriers: a hazard there is what racecheck reports).
  if [ "${LORA_LEAN_CHECKS:-0}" = 1 ]; then
    echo "== kernel test vs CPU twin, lean store expand (TSLORA_CUDA_LORA_STORE_LEAN=1)"
    LORA_TEST_PATHS=tiled/wide TSLORA_CUDA_LORA_STORE_LEAN=1 timeout 90 "$B/lora_cuda_test" 2>&1 | tee "$OUT/test-lean.log" | tail -3
    echo "== device pool vs CPU pool, lean store expand with the m64k64f shrink (session 25)"
    TSLORA_CUDA_LORA_STORE_LEAN=1 TSLORA_CUDA_LORA_WIDE_SHRINK_TILE=m64k64f timeout 60 "$B/lora_device_pool_test" 2>&1 \
      | tee "$OUT/device-pool-test-lean.log" | tail -3
    echo "== racecheck, lean store expand (quick subset)"
    LORA_TEST_PATHS=tiled/wide TSLORA_CUDA_LORA_STORE_LEAN=1 timeout "${RACECHECK_S:-60}" compute-sanitizer --tool racecheck --print-limit 5 "$B/lora_cuda_test" --quick \
      > "$OUT/racecheck-lean.log" 2>&1
    echo "racecheck rc=$?"; tail -3 "$OUT/racecheck-lean.log"
  fi
fi
if [ "${SKIP_MEMCHECK:-0}" != 1 ]; then
  echo "== compute-sanitizer memcheck (quick subset)"
  timeout "${MEMCHECK_S:-200}" compute-sanitizer --tool memcheck --print-limit 5 "$B/lora_cuda_test" --quick > "$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?"; tail -4 "$OUT/memcheck.log"
  timeout 90 compute-sanitizer --tool memcheck --print-limit 5 "$B/lora_device_pool_test" > "$OUT/memcheck-pool.log" 2>&1
  echo "memcheck (device pool) rc=$?"; tail -2 "$OUT/memcheck-pool.log"
fi
# LORA_NCU=1: Nsight Compute on the decode 64 x 1 kernels (csgmv small v11, stream launches, so without the graph
# chain's overlap): the qkv / gate_up / down shrink and expand, one ncu process each (a kernel's launches are counted
# by name: per module the bench times 403 shrinks, then 403 expands and 403 delta stores of the same expand kernel).
# Six sections, not --set full: session 23's call got one kernel of six through with the full set inside the step's limit.
if [ "${LORA_NCU:-0}" = 1 ] && command -v ncu > /dev/null; then
  echo "== ncu, decode 64x1 r16 (LORA_NCU=1)"
  for spec in "shrink qkv smallShrinkKernel 100" "shrink gate_up smallShrinkKernel 500" "shrink down smallShrinkKernel 900" \
              "expand qkv smallExpandKernel 100" "expand gate_up smallExpandKernel 906" "expand down smallExpandKernel 1712"; do
    set -- $spec
    LORA_BENCH_CASES="decode 64x1 r16" LORA_BENCH_STRATEGIES="csgmv small v11" LORA_BENCH_NO_SWEEPS=1 timeout 60 \
      ncu --kernel-name "$3" --launch-skip "$4" --launch-count 1 --section SpeedOfLight --section LaunchStats \
      --section Occupancy --section SchedulerStats --section WarpStateStats --section MemoryWorkloadAnalysis --csv --page details \
      "$B/lora_cuda_bench" /tmp/ncu-bench.json > "$OUT/ncu-$1-$2.csv" 2> "$OUT/ncu-$1-$2.err"
    echo "ncu $1 $2 rc=$? $(grep -c . "$OUT/ncu-$1-$2.csv") rows"
  done
fi
# LORA_NCU_PREFILL=1 (session 25): Nsight Compute on the prefill 8 x 512 r64 kernels of the lean store-form strategies
# ("triton store lean", and "triton store lean m64k64f" for the qkv shrink), stream launches of the per-module timing
# (3 warm-ups + 40 per module and kernel, modules in the order qkv, gate_up, down, o, so a kernel's launch 10 is qkv's,
# 53 gate_up's, 96 down's; the sweeps off). Why: the three wide shrinks ran at ~130 TFLOP/s (1.05-1.1 TFLOP/s per SM
# whatever the tile, the splits or the blocks per SM: session 23's sweep), about a quarter of what mma.sync can issue,
# and the gate_up store expand at 2.2 TB/s of writes; the stall reasons, the pipes' use and the memory tables say which
# limit it is. Each report is exported (gzipped .ncu-rep) and printed twice: the details page and the raw page (every
# metric the sections collected, the per-reason stall ratios among them); the qkv shrinks also with SourceCounters and
# per SASS instruction (stall samples per line). `node --import tsx bench/cuda/ncu-summary.ts FILE.csv…` tabulates
# them. Each ncu process LORA_NCU_S seconds at most (default 60).
if [ "${LORA_NCU_PREFILL:-0}" = 1 ] && command -v ncu > /dev/null; then
  echo "== ncu, prefill 8x512 r64 (LORA_NCU_PREFILL=1)"
  # name:kernel:launches to skip:strategy (lean = "triton store lean", leanf = "triton store lean m64k64f": its shrink
  # the m64k64f tile, session 25)
  specs="shrink-qkv:shrinkWideKernel:10:lean shrink-qkv-m64k64f:shrinkWideKernel:10:leanf expand-gate_up:expandWideKernel:53:lean"
  for spec in ${LORA_NCU_PREFILL_SPECS:-$specs shrink-down:shrinkWideKernel:96:lean}; do
    IFS=: read -r name kernel skip strategy <<< "$spec"
    [ "$strategy" = leanf ] && strategy="triton store lean m64k64f" || strategy="triton store lean"
    rep="$OUT/ncu-prefill-$name"
    # The decode runs' six sections, plus (the section names of session 23's full-set run) the memory tables, the
    # pipes, the instruction mix and, for the qkv shrink, the source counters; the six alone if that run fails.
    base=(--section SpeedOfLight --section LaunchStats --section Occupancy --section SchedulerStats --section WarpStateStats
          --section MemoryWorkloadAnalysis)
    more=(--section MemoryWorkloadAnalysis_Tables --section ComputeWorkloadAnalysis --section InstructionStats)
    [[ $name == shrink-qkv* ]] && more+=(--section SourceCounters)
    for sections in full base; do
      [ $sections = full ] && set -- "${base[@]}" "${more[@]}" || set -- "${base[@]}"
      env -u LORA_BENCH_STORE_SWEEP -u LORA_BENCH_WIDE_SWEEP -u LORA_BENCH_EXPAND_SWEEP LORA_BENCH_CASES="prefill 8x512 r64" \
        LORA_BENCH_STRATEGIES="$strategy" LORA_BENCH_NO_SWEEPS=1 timeout "${LORA_NCU_S:-60}" ncu --kernel-name "$kernel" --launch-skip "$skip" --launch-count 1 "$@" \
        --export "$rep" --force-overwrite "$B/lora_cuda_bench" /tmp/ncu-bench.json >> "$rep.log" 2>&1
      echo "ncu prefill $name ($sections sections) rc=$?"
      [ -f "$rep.ncu-rep" ] && break
    done
    [ -f "$rep.ncu-rep" ] || continue
    for page in details raw; do
      timeout 30 ncu --import "$rep.ncu-rep" --page $page --csv > "$rep-$page.csv" 2>> "$rep.log"
      echo "  $page page: $(grep -c . "$rep-$page.csv") lines"
    done
    if [[ $name == shrink-qkv* ]]; then
      timeout 30 ncu --import "$rep.ncu-rep" --page source --print-source sass --csv > "$rep-sass.csv" 2>> "$rep.log"
      echo "  sass page: $(grep -c . "$rep-sass.csv") lines"; gzip -f "$rep-sass.csv"
    fi
    gzip -f "$rep.ncu-rep"
  done
fi
if [ "${SKIP_TORCH:-0}" != 1 ]; then echo "== torch baseline"; PYTHONUNBUFFERED=1 timeout 200 python3 bench/lora/torch_baseline.py "$OUT/torch.json" > "$OUT/torch.log" 2>&1; echo "torch rc=$?"
tail -5 "$OUT/torch.log"; fi
echo "total: $(( $(date +%s) - start )) s"
