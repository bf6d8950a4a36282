#!/usr/bin/env bash
# Lead's final device call (one): amx17's CPU checks (tests, then bench) on cores 0-1 in a copy of the tree, beside
# gpu-suite on cores 2-15 (PACK, STEP_TARGETS; the given env for the whole run, STEP_BEFORE_ENV for the 'before'
# side, graphs on both), pdl-final.sh as a suite extra, then triton-vs-csgmv when time is left.
# usage: bash .devo/final-run.sh <commit> "<env for the whole run>" "<before env>"
source .device-carry/prelude.sh
T0=$(date +%s)
export TSLORA_GIT_COMMIT=$1
for kv in $2; do export "$kv"; done
export STEP_BEFORE_ENV="$3"
export FINAL_OUT=/tmp/final; mkdir -p $FINAL_OUT
echo "env: $2 / before: $3" > $FINAL_OUT/final-run.log
AMX=
if [ -f scripts/device/amx17-final.sh ] && [ "${NO_AMX:-0}" != 1 ]; then
  mkdir -p /tmp/amxw && tar --exclude=./.device-carry --exclude=./.devo --exclude=./node_modules -cf - . | tar -C /tmp/amxw -xf -
  ln -sfn $PWD/node_modules /tmp/amxw/node_modules
  ( cd /tmp/amxw && timeout 200 taskset -c 0,1 bash scripts/device/amx17-final.sh tests > $FINAL_OUT/amx17-tests.log 2>&1; echo "amx17 tests rc=$? at $(( $(date +%s) - T0 )) s" >> $FINAL_OUT/final-run.log
    timeout 150 taskset -c 0,1 bash scripts/device/amx17-final.sh lora > $FINAL_OUT/amx17-lora.log 2>&1; echo "amx17 lora rc=$? at $(( $(date +%s) - T0 )) s" >> $FINAL_OUT/final-run.log ) &
  AMX=$!
fi
extras=""; [ "${FINAL_EXTRAS:-0}" = 1 ] && [ -f scripts/device/pdl-final.sh ] && extras="scripts/device/pdl-final.sh"
KEEP_BENCH_8B=1 PACK=1 BUDGET_S=${SUITE_BUDGET_S:-400} GPU_TESTS_LIMIT_S=230 STEP_TARGETS=1 STEP_BEFORE_GRAPHS=128 \
  SUITE_EXTRA_SCRIPTS="$extras" SUITE_EXTRA_LIMIT_S=58 taskset -c 2-15 bash scripts/device/gpu-suite.sh > $OUT/suite-stdout.log 2>&1
echo "suite rc=$? at $(( $(date +%s) - T0 )) s" >> $FINAL_OUT/final-run.log
if (( $(date +%s) - T0 < ${TVC_UNTIL_S:-330} )); then
  TSLORA_BENCH_CONFIGS=triton-vs-csgmv-h200 TSLORA_BENCH_ROUNDS=1 TSLORA_BENCH_BUDGET_S=45 OUT=$FINAL_OUT/tvc timeout 55 bash bench/device-run.sh > $FINAL_OUT/tvc.log 2>&1
  echo "tvc rc=$? at $(( $(date +%s) - T0 )) s" >> $FINAL_OUT/final-run.log
fi
# Owed engine A/Bs on the kept 8B model, graphs on, alternating processes: default / LoRA shrink in the skinny GEMM's
# launch (fuseshrink) / the small shrink's reduction (smallexp).
B8=/tmp/tslora-bench-8b
if [ -d $B8/model ]; then
  tar -xzf $OUT/gpu.tar.gz -C /tmp gpu/bandwidth.json 2>/dev/null
  for round in 1 2; do
    for v in "AB=default" "TSLORA_CUDA_SKINNY_LORA=1" "TSLORA_CUDA_LORA_SMALL_REDUCE=1"; do
      (( $(date +%s) - T0 > ${AB_UNTIL_S:-380} )) && break 2
      tag=$(echo "$v" | tr -c 'A-Za-z0-9=\n' '_')
      env $v timeout 40 node --import tsx bench/cuda/decode.ts --model $B8/model --adapters $B8/adapters --steps 12 --backends csgmv \
        --batches 1,2,64 --no-prefill --cuda-graph-max-bs 128 --label "$v" --bandwidth /tmp/gpu/bandwidth.json \
        --json $FINAL_OUT/ab8b-$round-$tag.json > $FINAL_OUT/ab8b-$round-$tag.log 2>&1
      echo "ab8b $round $v rc=$? at $(( $(date +%s) - T0 )) s" >> $FINAL_OUT/final-run.log
    done
  done
  rm -rf $B8
fi
[ -n "$AMX" ] && { kill $AMX 2>/dev/null; wait $AMX; }
echo "total $(( $(date +%s) - T0 )) s" >> $FINAL_OUT/final-run.log
tar -C /tmp -czf $OUT/final.tgz final
