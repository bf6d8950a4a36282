#!/usr/bin/env bash
# cpulora, device round 1: issue 17's single-stream LoRA cost on the Xeon host (CPU only, 2 threads pinned to 0-1).
#   build: this copy's CPU addon, a baseline copy (main ab4baa8, before the fused expand; round-baseline-*.tgz) with
#          its own addon, and the synthetic 125M model + r16/r64 adapters (private dir)
#   run:   the fusion tests with the machine's own ISA (amx: prefill on tiles), then decode.ts of this copy and of the
#          baseline in alternating processes (each: base / fused / shrink-only / unfused steps alternating in one process)
set -u
MODE=${1:-}
O=${ROUND_OUT:-/tmp/round-out}
mkdir -p "$O"
T0=$(date +%s)
ROOT=$PWD
B=/tmp/cpulora-baseline
D=/tmp/cpulora-bench
NODEBIN=$(dirname "$(command -v node)")
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/progress-$MODE.log"; }
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0-1"
cpuonly() { TSLORA_BUILD_JOBS=6 PATH=$NODEBIN:/usr/bin:/bin "$@"; }

case "$MODE" in
  build)
    { lscpu; nvidia-smi --query-gpu=name --format=csv 2>&1; uname -r; } > "$O/cpu.txt" 2>&1
    ( cpuonly timeout 150 node scripts/build-native.mjs --force > "$O/build-this.log" 2>&1; echo "this rc=$?" >> "$O/build-rc.txt" ) &
    rm -rf "$B" && mkdir -p "$B/node_modules" && tar -xzf round-baseline-ab4baa8.tgz -C "$B"
    mods=$(readlink -f "$ROOT/node_modules")
    for e in "$mods"/* "$mods"/.bin; do ln -s "$e" "$B/node_modules/"; done
    rm "$B/node_modules/node-addon-api" && cp -r "$mods/node-addon-api" "$B/node_modules/"
    cp bench/native/decode.ts "$B/bench/native/"  # the same benchmark for both builds (the baseline lacks the expand switch)
    ( cd "$B" && cpuonly timeout 150 node scripts/build-native.mjs --force > "$O/build-baseline.log" 2>&1; echo "baseline rc=$?" >> "$O/build-rc.txt" ) &
    wait
    log "builds: $(tr '\n' ' ' < "$O/build-rc.txt")"
    timeout 40 node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 2 --read-rate-steps 1 --prefill-rounds 0 --dir $D > "$O/generate.txt" 2>&1
    log "model + adapters generated: rc=$?"
    ;;
  run)
    bench() {  # $1 = this | baseline, $2 = round, $3 = the expand's prefetch distance (bytes; this copy only)
      local dir=$ROOT; [ "$1" = baseline ] && dir=$B
      ( cd "$dir" && TSLORA_LORA_EXPAND_PREFETCH_BYTES=$3 timeout 10 $PIN node --import tsx bench/native/decode.ts --preset 125m \
          --lora-pool-dtype bf16 --steps 30 --read-rate-steps 4 --batch8-rounds 0 --prefill-rounds 0 --dir $D --out "$O/$1-$2.json" > "$O/$1-$2.txt" 2>&1 )
      log "$1 $2 (prefetch $3): rc=$? $(grep -E '^(batch 1|LoRA)' "$O/$1-$2.txt" | tr '\n' ' ')"
    }
    bench this 1 4096; bench baseline 1 -; bench this pf0 0; bench this 2 4096; bench baseline 2 -
    timeout 6 node scripts/run-tests.mjs test/native/lora-fused-expand.test.ts test/native/lora-fused-shrink.test.ts > "$O/tests.log" 2>&1
    log "tests: rc=$? $(grep -E '^tslora tests' "$O/tests.log")"
    ;;
  *) echo "usage: round.sh build|run"; exit 2 ;;
esac
log "done"
