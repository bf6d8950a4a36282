#!/usr/bin/env bash
# Session 17, final call: main's GPU suite on all cores (tests, 8B before/after, serving overhead, triton-vs-csgmv, LoRA
# kernel bench, step-targets.json), then the helpers' run phases from main's tree (.devo/<name>/round.sh, build lines
# for tsc / addon / 1B reference stripped); a CPU helper's round on CPUs 0-1 in its own copy (.devo/<cpu>/ overlay).
# usage: bash .devo/part3.sh <commit> <limit s> <suite budget s> "<gpu helpers name:limit ...>" <cpu helper|->
source .device-carry/prelude.sh
ROOT=$PWD; T0=$(date +%s); R=$OUT/r3; mkdir -p $R; LIM=$2; GPUH=$4; CPUH=$5
log() { echo "$* at $(( $(date +%s) - T0 )) s" >> $R/combo.log; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)|L3'; } > $R/machine.txt 2>&1
( OUT=$R/lora-build PHASE=build LORA_BUILD_DIR=/tmp/lora-build nice -n 5 timeout -k 5 250 bash bench/lora/device-run.sh > $R/lora-build.log 2>&1; log "lora build rc=$?" ) &
CPU=
if [[ $CPUH != - ]] && [[ -f .devo/$CPUH/round.sh ]]; then
  d=/tmp/w/$CPUH; mkdir -p $R/$CPUH $d
  tar -C $ROOT --exclude=./.devo --exclude=./.device-carry --exclude=./node_modules --exclude=./build-cuda -cf - . | tar -C $d -xf -
  cp -a .devo/$CPUH/. $d/; ln -sfn $ROOT/node_modules $d/node_modules
  ( cd $d && export MAIN_DIR=$ROOT && ROUND_OUT=$R/$CPUH ROUND_LIMIT_S=190 timeout -k 5 190 taskset -c 0,1 bash round.sh build > $R/$CPUH/build-phase.log 2>&1
    log "$CPUH build rc=$?"
    rem=$(( LIM - 15 - ($(date +%s) - T0) )); (( rem > 240 )) && rem=240
    ROUND_OUT=$R/$CPUH ROUND_LIMIT_S=$rem timeout -k 5 $rem taskset -c 0,1 bash round.sh run > $R/$CPUH/run-phase.log 2>&1
    log "$CPUH run rc=$?" ) &
  CPU=$!
fi
GB=()
for spec in $GPUH; do n=${spec%%:*}; mkdir -p $R/$n
  [[ -f .devo/$n/round.sh ]] || { log "$n: no round.sh"; continue; }
  # in the repository root (helpers' scripts cd to their own directory), with the untracked files of the overlay beside it
  sed -E '/step (tsc|build-cuda) |make-1b-reference\.py|build-native\.mjs|build-cuda-addon\.mjs/s/^.*$/  :/' .devo/$n/round.sh > $ROOT/.round-$n.sh
  for f in .devo/$n/*.tar.gz; do [[ -f $f ]] && cp "$f" $ROOT/; done
  [[ $spec == *:nobuild ]] && { log "$n build: skipped (the suite builds what it needs)"; continue; }
  ( ROUND_OUT=$R/$n ROUND_LIMIT_S=200 nice -n 8 timeout -k 5 200 bash $ROOT/.round-$n.sh build > $R/$n/build-phase.log 2>&1; log "$n build rc=$?" ) &
  GB+=($!)
done
export TSLORA_GIT_COMMIT=$1 STEP_BEFORE_ENV="TSLORA_CUDA_FUSED_ROPE_ATTN=0"
PHASE=run OUT=$R PACK=0 KEEP_BENCH_8B=1 BUDGET_S=$3 GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-200} STEP_TARGETS=1 STEP_BEFORE_GRAPHS=128 \
  STEP_SKIP="decode-1b host-overhead graphs-only" bash scripts/device/gpu-suite.sh > $R/suite-stdout.log 2>&1
log "suite rc=$?"
[ -d /tmp/tslora-bench-8b/model ] && touch /tmp/tslora-bench-8b/ready
[ ${#GB[@]} -gt 0 ] && wait "${GB[@]}"
log "helper builds done"
n_left=$(echo $GPUH | wc -w)
for spec in $GPUH; do n=${spec%%:*}; lim=${spec#*:}; lim=${lim%%:*}
  [[ -f $ROOT/.round-$n.sh ]] || continue
  rem=$(( LIM - 15 - ($(date +%s) - T0) )); share=$(( rem / n_left )); (( lim > share )) && lim=$share; n_left=$((n_left-1))
  if (( lim >= 20 )); then
    ( ROUND_OUT=$R/$n ROUND_LIMIT_S=$lim timeout -k 5 $lim taskset -c 2-15 bash $ROOT/.round-$n.sh run > $R/$n/run-phase.log 2>&1 )
    log "$n run rc=$? (limit $lim)"
  else log "$n run SKIPPED ($lim s)"; fi
done
rem=$(( LIM - 8 - ($(date +%s) - T0) )); (( rem < 1 )) && rem=1
[ -n "$CPU" ] && { timeout $rem tail --pid=$CPU -f /dev/null; kill $CPU 2>/dev/null; }
log total
find $R -name '*.nsys-rep' -delete -o -name '*.sqlite' -delete; gzip -f $R/gpu/gpu-tests.log 2>/dev/null
tar -C $OUT -czf $OUT/r3.tgz r3 && cp $R/gpu/summary.txt $R/gpu/step-targets.json $R/gpu/gpu-tests-summary.txt $R/combo.log $OUT/ 2>/dev/null; rm -rf $R
