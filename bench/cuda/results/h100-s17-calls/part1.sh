#!/usr/bin/env bash
# Session 17, call 1: main's GPU suite with all cores for the build (tests, 8B before/after rows, LoRA kernel bench,
# step-targets.json), and the extra builds that call 2's decision rounds need, niced in the background.
# usage: bash .devo/part1.sh <commit> <budget s>
source .device-carry/prelude.sh
ROOT=$PWD; T0=$(date +%s); R=$OUT/r1; mkdir -p $R
log() { echo "$* at $(( $(date +%s) - T0 )) s" >> $R/combo.log; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)|L3'; } > $R/machine.txt 2>&1
# extras for call 2 (niced): step64 bench + engine-kernels driver (step64-round build without tsc / addon / 1B ref),
# the small-step check's kernels before the deletions (5d7caa8)
sed -E '/step (tsc|build-cuda) |make-1b-reference\.py/s/^.*$/  :/' bench/cuda/step64-round.sh > /tmp/step64-round.sh
( ROUND_OUT=$R/b64-build nice -n 12 timeout -k 5 300 bash /tmp/step64-round.sh build > $R/b64-build.log 2>&1; log "b64 build rc=$?" ) &
sed -E 's#node scripts/build-cuda-addon.mjs --jobs 8#true#; s#python3 scripts/device/make-1b-reference.py --out \$REF --layers 4#true#; s#OUT=\$O/lora PHASE=build LORA_BUILD_DIR=\$B timeout 190 nice -n 5 bash bench/lora/device-run.sh#true#' \
  bench/lora/small-step-check.sh > /tmp/small-step-check.sh
cp .devo/mend-base.tar.gz .
# the LoRA kernel drivers + microbenchmark (the suite's lora-bench then only runs them: PHASE=run)
( OUT=$R/lora-build PHASE=build LORA_BUILD_DIR=/tmp/lora-build nice -n 5 timeout -k 5 300 bash bench/lora/device-run.sh > $R/lora-build.log 2>&1; log "lora build rc=$?" ) &
( ROUND_OUT=$R/mend-build nice -n 12 timeout -k 5 300 bash /tmp/small-step-check.sh build > $R/mend-build.log 2>&1; log "mend build rc=$?" ) &
export TSLORA_GIT_COMMIT=$1 STEP_BEFORE_ENV="TSLORA_CUDA_LORA_SMALL_NARROW=0 TSLORA_CUDA_LORA_SMALL_LONGK=0 TSLORA_CUDA_LORA_SMALL_EARLY=0"
PHASE=run OUT=$R PACK=0 KEEP_BENCH_8B=1 BUDGET_S=$2 GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-230} STEP_TARGETS=1 STEP_BEFORE_GRAPHS=128 \
  STEP_SKIP="decode-1b serving host-overhead graphs-only" bash scripts/device/gpu-suite.sh > $R/suite-stdout.log 2>&1
log "suite rc=$?"
[ -d /tmp/tslora-bench-8b/model ] && touch /tmp/tslora-bench-8b/ready
wait
log total
gzip -f $R/gpu/gpu-tests.log 2>/dev/null
tar -C $OUT -czf $OUT/r1.tgz r1 && cp $R/gpu/summary.txt $R/gpu/step-targets.json $R/gpu/gpu-tests-summary.txt $R/combo.log $OUT/ 2>/dev/null; rm -rf $R
