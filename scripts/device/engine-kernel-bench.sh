#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS; session 25): the engine's kernels compiled for the GPU, checked against their
# references (kernel-emu-test, the checks of test/gpu/engine-kernels, among them the mma.sync prefill attention's cases:
# its ldmatrix.trans layout has run only on the host emulator) and timed (--bench: the attention kernels at the 1B and
# 8B head shapes, the WMMA and the mma.sync prefill kernels side by side, the row kernels).
# Writes $AB_OUT/engine-kernels.log and one line to $AB_OUT/combo.log.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; T0=$(date +%s); E=native/src/cuda/engine; B=/tmp/tslora-kernel-test
mkdir -p $B
NV="nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -DTSLORA_KERNEL_TEST_ON_GPU -Inative/include -Inative/src/cuda -I$E"
for f in $E/test/kernel-emu-test.cpp $E/attention.cu $E/attention-prefill.cu $E/greedy.cu $E/kernels.cu $E/skinny-gemm.cu; do
  $NV -c "$f" -o "$B/$(basename "$f").o" > "$B/$(basename "$f").log" 2>&1 &  # one compiler per source, side by side
done
wait
cat $B/*.log > "$R/engine-kernels.log"
$NV $B/*.o -o $B/kernel-test >> "$R/engine-kernels.log" 2>&1 && $B/kernel-test --bench >> "$R/engine-kernels.log" 2>&1
echo "engine kernels rc=$? at $(( $(date +%s) - T0 )) s ($(grep -c '^FAIL' "$R/engine-kernels.log") FAIL lines)" >> "$R/combo.log"
exit 0
