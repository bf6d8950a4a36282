#!/usr/bin/env bash
# The adapter data path on the GPU (issue #11), one device call, standalone or from scripts/device/gpu-suite.sh.
# Run from the repository root after `source .device-carry/prelude.sh`:
#   bash scripts/device/adapter-path-suite.sh
# Steps (time-boxed by BUDGET_S, default 200 s; STEPS picks them, default "build load pool churn overlap scale"):
#   build    tsc + the addons (node scripts/build-native.mjs --force --cuda); skipped when SKIP_BUILD=1 and both exist
#   load     bench/adapter-load/adapter_load_bench.cpp: slot load of an 8B-shape r16 / r64 all-modules adapter from the
#            page-locked host tier next to the pinned H2D bandwidth of the same bytes   → adapter-load.json
#   pool     native/src/cuda/test/lora_device_pool_test.cpp against the built kernel library (image and fp32 loads)
#   churn    test/gpu/cuda-adapter-churn.test.ts (8 adapters, 2 slots, host tier 3, overlap on/off, PEFT tokens)
#            and test/native/lora-host-image.test.ts (the image layout, page-locked here)
#   overlap  tslora bench overlap-loading-h200 (OVERLAP_ROUNDS rounds, default 1)
#   scale    tslora bench adapter-scale-h200
# Then scripts/device/adapter-path-targets.mjs writes adapter-path-targets.json (gpu, date, commit, per measure its value,
# target and met) from what ran. Output: "$OUT/adapter-path/" holds summary.txt, adapter-path-targets.json and
# logs.tar.gz (every log, the bench results), 3 files; the stage is "$STAGE" (default /tmp/tslora-adapter-path).
set -u
OUT=${OUT:-/tmp/tslora-adapter-path-out}
A="$OUT/adapter-path"
STAGE=${STAGE:-/tmp/tslora-adapter-path}
STEPS=${STEPS:-build load pool churn overlap scale}
BUDGET_S=${BUDGET_S:-200}
mkdir -p "$A" "$STAGE"
T0=$(date +%s)
STEPS_BUDGET_S=$BUDGET_S STEPS_T0=$T0 STEPS_LOG_DIR=$STAGE STEPS_SUMMARY=$A/summary.txt
source "$(dirname "${BASH_SOURCE[0]}")/../lib/timed-steps.sh"  # summary, left, step
wants() { [[ " $STEPS " == *" $1 "* ]]; }
: > "$A/summary.txt"
{ nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv; nvcc --version | tail -1; node -v; nproc; } > "$STAGE/gpu.txt" 2>&1
export TSLORA_BUILD_JOBS=$(nproc)

if wants build && ! { [[ ${SKIP_BUILD:-0} == 1 ]] && [[ -f build-cuda/Release/tslora_cuda.node ]] && [[ -f build/Release/tslora_cpu.node ]]; }; then
  step tsc 40 tsc.log npx tsc -p tsconfig.json
  step build 150 build.log node scripts/build-native.mjs --force --cuda
fi
LIB=$(find build-cuda -name libtslora_cuda_kernels.a 2>/dev/null | head -1)
NV="nvcc -std=c++17 -O2 -Inative/include -Inative/src/lora -Inative/src/lora/test -Inative/src/cuda -Inative/src/cuda/test -Xcompiler -pthread"
HOST_SRC="native/src/lora/host_adapter.cpp native/src/lora/lora_pool.cpp native/src/lora/lora_apply.cpp native/src/lora/cpu_expand.cpp native/src/lora/cpu_expand_avx512.cpp native/src/lora/test/test_thread_pool.cpp"
if wants load || wants pool; then
  if [[ -z $LIB ]]; then
    summary "load, pool: SKIPPED (no build-cuda/**/libtslora_cuda_kernels.a: the CUDA build failed, see build.log)"
  else
    wants load && step load-build 60 load-build.log $NV bench/adapter-load/adapter_load_bench.cpp $HOST_SRC "$LIB" -o /tmp/adapter-load-bench &
    wants pool && step pool-build 60 pool-build.log $NV native/src/cuda/test/lora_device_pool_test.cpp $HOST_SRC "$LIB" -o /tmp/lora-device-pool-test &
    wait
    wants load && [[ -x /tmp/adapter-load-bench ]] && step load 60 adapter-load.log /tmp/adapter-load-bench "$STAGE/adapter-load.json" 10
    wants pool && [[ -x /tmp/lora-device-pool-test ]] && step pool 60 device-pool-test.log /tmp/lora-device-pool-test
    tail -3 "$STAGE/device-pool-test.log" 2>/dev/null | tee -a "$A/summary.txt"
    cat "$STAGE/adapter-load.log" 2>/dev/null | tee -a "$A/summary.txt"
  fi
fi
if wants churn; then
  step churn 90 churn-tests.log node scripts/run-tests.mjs test/gpu/cuda-adapter-churn.test.ts test/native/lora-host-image.test.ts
  grep -E "^# (pass|fail|skipped)|^not ok|cuda-adapter-churn|page-locked" "$STAGE/churn-tests.log" | tee -a "$A/summary.txt"
fi
rounds=${OVERLAP_ROUNDS:-1}
# overlap leaves scale the ~55 s it needs (1,000 adapters synthesized and registered, four 4-second levels)
olimit=$(( $(left) - $(wants scale && echo 55 || echo 5) ))
wants overlap && step overlap "$olimit" overlap.log node bin/tslora.js bench overlap-loading-h200 --rounds "$rounds" --out "$STAGE/overlap"
wants scale && step scale 120 scale.log node bin/tslora.js bench adapter-scale-h200 --out "$STAGE/scale"
node scripts/device/adapter-path-targets.mjs --gpu-file "$STAGE/gpu.txt" --load "$STAGE/adapter-load.json" \
  --overlap "$STAGE/overlap/results.json" --scale "$STAGE/scale/results.json" --out "$A/adapter-path-targets.json" \
  2>&1 | tee -a "$A/summary.txt"
summary "total: $(( $(date +%s) - T0 )) s"
tar -czf "$A/logs.tar.gz" -C "$STAGE" . 2>/dev/null
