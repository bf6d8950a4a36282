#!/usr/bin/env bash
# One device call for issue #12, most valuable first, within CALL_LIMIT_S (default 590): the CUDA build, the 8B A/Bs
# (scripts/device/side-priority-ab.sh), the quick GPU tests, the step targets (before = the side expand off; the 8B
# rows the median of STEP_8B_PROCESSES processes), then the long GPU tests (lora-kernels first) with what is left.
# Results: $OUT/r.tar.gz (everything) and, loose, summary.txt, combo.log, step-targets.json, the test summaries.
#   carry [".device-carry"]:  COMMIT=$(git rev-parse --short HEAD) bash scripts/device/session-call.sh
# Knobs: SUITE_BUDGET_S (400), GPU_TESTS / GPU_TESTS_LIMIT_S (the quick list, 60), LONG_TESTS, STEP_SKIP (host-overhead
# graphs-only triton-vs-csgmv), EXTRA / EXTRA_LIMIT_S (100), AB_* / AB1_* / AB2_* (side-priority-ab.sh), SKIP_1B_REFERENCE.
# EXTRA="scripts/device/module-cost-ab.sh" (or both, space-separated): the LoRA cost of each target module alone.
source .device-carry/prelude.sh
R=$OUT/r; mkdir -p "$R"; T0=$(date +%s); LIM=${CALL_LIMIT_S:-590}
export TSLORA_GIT_COMMIT=${COMMIT:-unknown} STEP_BEFORE_ENV="${STEP_BEFORE_ENV:-TSLORA_CUDA_LORA_SIDE_EXPAND=0}" AB_OUT=$R
QUICK="test/gpu/cuda-side-expand.test.ts test/gpu/cuda-graphs.test.ts test/gpu/cuda-parity-fixtures.test.ts test/gpu/cuda-parity-1b.test.ts test/gpu/cuda-pdl.test.ts"
LONG="test/gpu/lora-kernels.test.ts test/gpu/skinny-gemm.test.ts test/gpu/engine-kernels.test.ts test/gpu/decode-gemm.test.ts \
test/gpu/cuda-forward-passes.test.ts test/gpu/cuda-forward-api.test.ts test/gpu/cuda-forward-demo.test.ts test/gpu/cuda-adapter-churn.test.ts \
test/gpu/cuda-attention-long.test.ts test/gpu/cuda-sampling.test.ts test/gpu/cuda-sampling-law.test.ts"
OUT=$R PACK=0 KEEP_BENCH_8B=1 BUDGET_S=${SUITE_BUDGET_S:-400} GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-60} STEP_TARGETS=1 STEP_BEFORE_GRAPHS=128 \
  SUITE_EXTRA_SCRIPTS="${EXTRA:-scripts/device/side-priority-ab.sh}" SUITE_EXTRA_LIMIT_S=${EXTRA_LIMIT_S:-100} \
  GPU_TESTS="${GPU_TESTS:-$QUICK}" STEP_SKIP="${STEP_SKIP:-host-overhead graphs-only triton-vs-csgmv}" \
  bash scripts/device/gpu-suite.sh > "$R/suite-stdout.log" 2>&1
echo "suite rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
rem=$(( LIM - 20 - ($(date +%s) - T0) ))
if (( rem > 30 )); then
  timeout -k 5 $rem node scripts/run-tests.mjs ${LONG_TESTS:-$LONG} --test-concurrency=8 > "$R/gpu-long-tests.log" 2>&1
  echo "long tests rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
  grep -E "^# (tests|pass|fail|skipped)|^not ok|^ok" "$R/gpu-long-tests.log" > "$R/gpu-long-summary.txt"
else echo "long tests skipped ($rem s left)" >> "$R/combo.log"; fi
gzip -f "$R/gpu/gpu-tests.log" "$R/gpu-long-tests.log" 2>/dev/null
cp "$R/gpu/summary.txt" "$R/gpu/step-targets.json" "$R/gpu/gpu-tests-summary.txt" "$R/combo.log" "$R/gpu-long-summary.txt" "$OUT/" 2>/dev/null
tar czf "$OUT/r.tar.gz" -C "$OUT" r && rm -rf "$R"
