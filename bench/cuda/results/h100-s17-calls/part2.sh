#!/usr/bin/env bash
# Session 17, call 2: the three decision rounds of issue 12 (skinny LoRA, batch-64 switches, small-step check) and
# the 8B per-kernel profile, after a full build on all cores; issue 17's Xeon CPU round beside on CPUs 0-1.
# usage: bash .devo/part2.sh <limit s>
source .device-carry/prelude.sh
ROOT=$PWD; T0=$(date +%s); R=$OUT/r2; mkdir -p $R; LIM=$1
log() { echo "$* at $(( $(date +%s) - T0 )) s" >> $R/combo.log; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)|L3'; } > $R/machine.txt 2>&1
npx tsc -p tsconfig.json > $R/tsc.log 2>&1; log "tsc rc=$?"
( timeout 200 python3 scripts/device/make-1b-reference.py --out /tmp/tslora-1b --layers 4 > $R/make-1b-reference.log 2>&1; log "1B ref rc=$?" ) &
( source scripts/device/step-targets-synth.sh > $R/synth.log 2>&1; touch /tmp/tslora-bench-8b/ready; log "synth done" ) &
( nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a bench/cuda/bandwidth.cu -o /tmp/fuselora-bandwidth > $R/bw-build.log 2>&1; log "bw build rc=$?" ) &
( OUT=$R/lora-build PHASE=build LORA_BUILD_DIR=/tmp/lora-build nice -n 5 timeout -k 5 250 bash bench/lora/device-run.sh > $R/lora-build.log 2>&1; log "lora build rc=$?" ) &
sed -E '/step (tsc|build-cuda) |make-1b-reference\.py/s/^.*$/  :/' bench/cuda/step64-round.sh > /tmp/step64-round.sh
( ROUND_OUT=$R/b64 nice -n 8 timeout -k 5 250 bash /tmp/step64-round.sh build > $R/b64-build.log 2>&1; log "b64 build rc=$?" ) &
sed -E 's#node scripts/build-cuda-addon.mjs --jobs 8#true#; s#python3 scripts/device/make-1b-reference.py --out \$REF --layers 4#true#; s#OUT=\$O/lora PHASE=build LORA_BUILD_DIR=\$B timeout 190 nice -n 5 bash bench/lora/device-run.sh#true#' \
  bench/lora/small-step-check.sh > /tmp/small-step-check.sh
cp .devo/mend-base.tar.gz .
( ROUND_OUT=$R/mend nice -n 8 timeout -k 5 250 bash /tmp/small-step-check.sh build > $R/mend-build.log 2>&1; log "mend build rc=$?" ) &
TSLORA_BUILD_JOBS=$(nproc) timeout 250 node scripts/build-native.mjs --force --cuda > $R/build.log 2>&1; log "addon build rc=$?"
wait; log "builds done"
ln -sfn /tmp/lora-build /tmp/mend-build; ln -sfn /tmp/tslora-1b /tmp/mend-1b
# issue 17's CPU round on CPUs 0-1 in its own copy of the tree
d=/tmp/w/cpu17; mkdir -p $R/cpu17 $d
tar -C $ROOT --exclude=./.devo --exclude=./.device-carry --exclude=./node_modules --exclude=./build-cuda -cf - . | tar -C $d -xf -
ln -sfn $ROOT/node_modules $d/node_modules
( cd $d && ROUND_OUT=$R/cpu17 ROUND_LIMIT_S=170 timeout -k 5 170 taskset -c 0,1 bash bench/results/cpu/issue17-owned-ranges/round.sh build > $R/cpu17/build-phase.log 2>&1
  log "cpu17 build rc=$?"
  rem=$(( LIM - 15 - ($(date +%s) - T0) )); (( rem > 230 )) && rem=230
  ROUND_OUT=$R/cpu17 ROUND_LIMIT_S=$rem timeout -k 5 $rem taskset -c 0,1 bash bench/results/cpu/issue17-owned-ranges/round.sh run > $R/cpu17/run-phase.log 2>&1
  log "cpu17 run rc=$?" ) &
CPU=$!
gpu() {  # name limit cmd...
  local n=$1 lim=$2; shift 2
  local rem=$(( LIM - 12 - ($(date +%s) - T0) )); (( lim > rem )) && lim=$rem
  (( lim < 20 )) && { log "$n SKIPPED"; return; }
  ROUND_OUT=$R/$n ROUND_LIMIT_S=$lim timeout -k 5 $lim taskset -c 2-15 "$@" > $R/$n.log 2>&1; log "$n rc=$? (limit $lim)"
}
gpu fuselora 135 bash scripts/device/skinny-lora-round.sh run
gpu b64 135 bash /tmp/step64-round.sh run
gpu mend 75 bash bench/lora/small-step-check.sh run
rem=$(( LIM - 15 - ($(date +%s) - T0) ))
(( rem > 30 )) && { timeout -k 3 $(( rem - 5 )) taskset -c 2-15 bash .devo/profile8b.sh $R/prof $(( LIM - 50 )) $T0 > $R/prof.log 2>&1; log "profile rc=$?"; }
rem=$(( LIM - 8 - ($(date +%s) - T0) )); (( rem < 1 )) && rem=1
timeout $rem tail --pid=$CPU -f /dev/null; kill $CPU 2>/dev/null
log total
find $R -name '*.nsys-rep' -delete -o -name '*.sqlite' -delete
tar -C $OUT -czf $OUT/r2.tgz r2 && cp $R/combo.log $OUT/; rm -rf $R
