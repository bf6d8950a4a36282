#!/usr/bin/env bash
# dgemm's part of the lead's final device run (issue #12, < 60 s, after the CUDA addon build, on an idle GPU): the
# tensor-core decode GEMM (native/src/cuda/engine/decode-gemm.cu; off in the engine's dispatch, TSLORA_CUDA_DECODE_GEMM=1
# turns it on) against cublasGemmEx per projection shape and M, with the read bandwidth measured in the same run.
# Its correctness check is test/gpu/decode-gemm.test.ts (part of the GPU tests). The benchmark driver links the
# addon build's own object of decode-gemm.cu (no second compile of the kernels).
# Usage (repo root): FINAL_OUT=DIR bash scripts/device/dgemm-final.sh  → DIR/dgemm/{bench.log,bandwidth.json,...}
set -u
OUT=${FINAL_OUT:-/tmp/final-out}/dgemm
mkdir -p "$OUT"
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/progress.log"; }
OBJ=build-cuda/addon-obj/native_src_cuda_engine_decode-gemm_cu.o
BIN=$(mktemp -d /tmp/dgemm-final.XXXXXX)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader > "$OUT/gpu.txt" 2>&1
log "GPU: $(cat "$OUT/gpu.txt")"
[[ -f $OBJ ]] || { log "no $OBJ (the CUDA addon was not built): nothing measured"; exit 1; }
INC="-Inative/include -Inative/src/cuda -Inative/src/cuda/engine -Inative/src/cuda/engine/test"
( timeout 30 nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -DTSLORA_WITH_CUBLAS $INC -Xcompiler -pthread \
    -c native/src/cuda/engine/test/decode-gemm-test.cu -o "$BIN/test.o" && timeout 15 nvcc "$BIN/test.o" "$OBJ" -lcublas -o "$BIN/bench" ) \
  > "$OUT/build.log" 2>&1 &
timeout 30 nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a bench/cuda/bandwidth.cu -o "$BIN/bandwidth" > "$OUT/bandwidth-build.log" 2>&1
wait
[[ -x $BIN/bench ]] || { log "benchmark driver did not build (build.log)"; exit 1; }
log "built"
timeout 10 "$BIN/bandwidth" "$OUT/bandwidth.json" > "$OUT/bandwidth.log" 2>&1
BW=$(grep -oE 'read [0-9]+ GB/s' "$OUT/bandwidth.log" | grep -oE '[0-9]+' | head -1)
log "read bandwidth ${BW:-?} GB/s"
# PDL off: the kernel alone, back to back, as cuBLAS is timed.
TSLORA_CUDA_PDL=0 timeout $(( 57 - ($(date +%s) - T0) )) "$BIN/bench" --bench "${BW:-3350}" > "$OUT/bench.log" 2>&1
log "bench rc=$? ($(grep -c '^bench .* M ' "$OUT/bench.log") shape x M rows)"
rm -rf "$BIN"
