#!/usr/bin/env bash
# Short round: main's GPU suite (tests + 8B before/after) on cores 2-9; the GPU helpers' code is all in main, so their
# round.sh run phases run in main's tree after it (their build phases without tsc / addon / 1B reference: extras only,
# on cores 10-15 beside the suite); cpu17's CPU round in its own copy on CPUs 0-1.
# usage: bash .devo/combo3.sh <commit> "<before env>" <deadline s> "<gpu helpers name:limit ...>" <cpu helper>
source .device-carry/prelude.sh
ROOT=$PWD; T0=$(date +%s); R=/tmp/round; mkdir -p $R
DEADLINE=$3; GPUH=$4; CPUH=$5
log() { echo "$* at $(( $(date +%s) - T0 )) s" >> $R/combo.log; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; lscpu | grep -E 'Model name|L3|Flags' | cut -c1-300; } > $R/machine.txt 2>&1
CPU=
if [ -n "$CPUH" ] && [ -f .devo/$CPUH/round.sh ]; then
  d=/tmp/w/$CPUH; mkdir -p $R/$CPUH $d
  tar -C $ROOT --exclude=./.devx --exclude=./.devo --exclude=./.device-carry --exclude=./node_modules -cf - . | tar -C $d -xf -
  cp -a .devo/$CPUH/. $d/; ln -sfn $ROOT/node_modules $d/node_modules
  ( cd $d && ROUND_OUT=$R/$CPUH ROUND_LIMIT_S=190 timeout -k 5 190 taskset -c 0,1 bash round.sh build > $R/$CPUH/build-phase.log 2>&1
    log "$CPUH build rc=$?"
    ROUND_OUT=$R/$CPUH ROUND_LIMIT_S=170 timeout -k 5 170 taskset -c 0,1 bash round.sh run > $R/$CPUH/run-phase.log 2>&1
    log "$CPUH run rc=$?" ) &
  CPU=$!
fi
GB=()
for spec in $GPUH; do n=${spec%%:*}; mkdir -p $R/$n
  sed -E '/step (tsc|build-cuda) |make-1b-reference\.py/s/^.*$/  :/' .devo/$n/round.sh > /tmp/round-$n.sh
  ( ROUND_OUT=$R/$n ROUND_LIMIT_S=200 timeout -k 5 200 taskset -c 10-15 bash /tmp/round-$n.sh build > $R/$n/build-phase.log 2>&1; log "$n build rc=$?" ) &
  GB+=($!)
done
export TSLORA_GIT_COMMIT=$1 STEP_BEFORE_ENV="$2"
PACK=1 KEEP_BENCH_8B=1 BUDGET_S=${SUITE_BUDGET_S:-290} GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-180} STEP_TARGETS=1 STEP_BEFORE_GRAPHS=128 \
  STEP_SKIP="decode-1b serving host-overhead lora-bench graphs-only" \
  taskset -c 2-9 bash scripts/device/gpu-suite.sh > $R/suite-stdout.log 2>&1
log "suite rc=$?"
[ -d /tmp/tslora-bench-8b/model ] && touch /tmp/tslora-bench-8b/ready
[ ${#GB[@]} -gt 0 ] && wait "${GB[@]}"
n_left=$(echo $GPUH | wc -w)
for spec in $GPUH; do n=${spec%%:*}; lim=${spec#*:}
  rem=$(( DEADLINE - ($(date +%s) - T0) )); share=$(( rem / n_left )); (( lim > share )) && lim=$share; n_left=$((n_left-1))
  if (( lim >= 20 )); then
    ( ROUND_OUT=$R/$n ROUND_LIMIT_S=$lim timeout -k 5 $lim taskset -c 2-15 bash /tmp/round-$n.sh run > $R/$n/run-phase.log 2>&1 )
    log "$n run rc=$? (limit $lim)"
  else log "$n run SKIPPED ($lim s)"; fi
done
rem=$(( DEADLINE + 5 - ($(date +%s) - T0) )); (( rem < 1 )) && rem=1
[ -n "$CPU" ] && { timeout $rem tail --pid=$CPU -f /dev/null; kill $CPU 2>/dev/null; }
log total
find $R -name '*.nsys-rep' -delete; tar -C /tmp -czf $OUT/round.tgz round
