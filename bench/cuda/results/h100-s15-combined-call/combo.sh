#!/usr/bin/env bash
# One device call for the whole session (starts keep failing): main's GPU suite (final-run.sh without its amx17 part),
# beside it cpur16's CPU round on CPUs 0-1 (build -> run, background), then smallexp2's GPU run with what is left.
# usage: bash .devo/combo.sh <commit> <before env> <deadline s>
source .device-carry/prelude.sh
ROOT=$PWD; T0=$(date +%s); R=/tmp/round; mkdir -p $R
DEADLINE=${3:-540}
prep() {  # main's tree + the helper's overlay, like round-driver.sh
  local n=$1 d=/tmp/w/$1; mkdir -p $R/$n $d
  tar -C $ROOT --exclude=./.devx --exclude=./.devo --exclude=./.device-carry --exclude=./node_modules -cf - . | tar -C $d -xf -
  cp -a $ROOT/.devo/$n/. $d/
  while read -r f; do [ -n "$f" ] && rm -f "$d/$f"; done < $ROOT/.devo/$n.deleted
  ln -sfn $ROOT/node_modules $d/node_modules
}
prep cpur16; prep smallexp2
( cd /tmp/w/cpur16 && ROUND_OUT=$R/cpur16 ROUND_LIMIT_S=170 timeout -k 5 170 taskset -c 0,1 bash round.sh build > $R/cpur16/build-phase.log 2>&1
  echo "cpur16 build rc=$? at $(( $(date +%s) - T0 )) s" >> $R/combo.log
  ROUND_OUT=$R/cpur16 ROUND_LIMIT_S=150 timeout -k 5 150 bash round.sh run > $R/cpur16/run-phase.log 2>&1
  echo "cpur16 run rc=$? at $(( $(date +%s) - T0 )) s" >> $R/combo.log ) &
CPU=$!
( cd /tmp/w/smallexp2 && ROUND_OUT=$R/smallexp2 ROUND_LIMIT_S=150 timeout -k 5 150 taskset -c 10-15 bash round.sh build > $R/smallexp2/build-phase.log 2>&1
  echo "smallexp2 build rc=$? at $(( $(date +%s) - T0 )) s" >> $R/combo.log ) &
GB=$!
NO_AMX=1 SUITE_BUDGET_S=${SUITE_BUDGET_S:-330} bash .devo/final-run.sh "$1" "" "$2"
echo "final-run done at $(( $(date +%s) - T0 )) s" >> $R/combo.log
wait $GB
lim=$(( DEADLINE - ($(date +%s) - T0) )); (( lim > 110 )) && lim=110
if (( lim >= 30 )); then
  ( cd /tmp/w/smallexp2 && ROUND_OUT=$R/smallexp2 ROUND_LIMIT_S=$lim timeout -k 5 $lim taskset -c 2-15 bash round.sh run > $R/smallexp2/run-phase.log 2>&1 )
  echo "smallexp2 run rc=$? (limit $lim) at $(( $(date +%s) - T0 )) s" >> $R/combo.log
else echo "smallexp2 run SKIPPED ($lim s left)" >> $R/combo.log; fi
rem=$(( DEADLINE + 15 - ($(date +%s) - T0) )); (( rem < 1 )) && rem=1
timeout $rem tail --pid=$CPU -f /dev/null; kill $CPU 2>/dev/null
echo "total $(( $(date +%s) - T0 )) s" >> $R/combo.log
tar -C /tmp -czf $OUT/round.tgz round
