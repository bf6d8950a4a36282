#!/usr/bin/env bash
# cpu17, session 17 device round: issue 17's CPU decode on the Xeon host (CPU only, 2 threads on CPUs 0-1).
# This build's defaults: owned ranges with the evened-out runs after an uneven fused-shrink head (restored), the fused
# shrink's prefetch stopping at its A rows' end (TSLORA_GEMM_OWN_PREFETCH=2), no far L2 prefetch, no spread adapter
# prefetch (TSLORA_LORA_SPREAD_PREFETCH=0).
#   build: this copy's CPU addon (a PATH without nvcc), the synthetic 125M model + r16/r64 adapters (private dir)
#   run:   lora-profile.ts --schedules (in-process variants), the tests of the touched code on this CPU's own ISA,
#          then 3 rounds of decode.ts processes alternating the env variants below, then lora-profile again.
#          MAIN_DIR=<checkout of main with its CPU addon built> adds main's build as a variant (used on the dev VM).
set -u
MODE=${1:-}
O=${ROUND_OUT:-/tmp/round-out}
LIMIT=${ROUND_LIMIT_S:-230}
PROC_S=${ROUND_PROC_S:-12}  # one decode.ts process (7 s on the Xeon this morning)
mkdir -p "$O"
T0=$(date +%s)
D=/tmp/cpu17-bench
NODEBIN=$(dirname "$(command -v node)")
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/progress-$MODE.log"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0,1"
cpuonly() { TSLORA_BUILD_JOBS=2 PATH=$NODEBIN:/usr/bin:/bin "$@"; }

case "$MODE" in
  build)
    { lscpu; nvidia-smi --query-gpu=name --format=csv 2>&1; uname -r; head -3 /proc/meminfo; } > "$O/cpu.txt" 2>&1
    : > "$O/build-rc.txt"
    ( cpuonly timeout 185 node scripts/build-native.mjs --force > "$O/build-this.log" 2>&1; echo "this rc=$?" >> "$O/build-rc.txt" ) &
    ( timeout 150 node --import tsx bench/native/lora-profile.ts --generate --dir $D > "$O/generate.txt" 2>&1; echo "model + adapters rc=$?" >> "$O/build-rc.txt" ) &
    wait
    log "builds: $(tr '\n' ' ' < "$O/build-rc.txt")"
    ;;
  run)
    { echo "affinity: $(taskset -pc $$ 2>&1)"; nproc; uptime; } > "$O/run-env.txt" 2>&1
    node --import tsx -e "import { loadNativeTestingOps } from './src/binding/index.ts'; const o = loadNativeTestingOps(); const owned = o.setGemmOwnedRanges(0); o.setGemmOwnedRanges(owned); const chunks = o.setGemmEpilogueChunks(0); o.setGemmEpilogueChunks(chunks); const pf = o.setGemmPrefetchFlags(0, 0); o.setGemmPrefetchFlags(pf[0], pf[1]); console.log(JSON.stringify({ isa: o.cpuKernelIsa(), wideExpand: o.setLoraWideExpand(), epilogueChunks: chunks, owned, prefetch: pf }))" > "$O/defaults.txt" 2>&1
    log "this build's defaults: $(cat "$O/defaults.txt")"
    # decode.ts variants, by environment (every GEMM of the process). BASE / OWN prefetch bits: 1 = far L2, 2 = stop at
    # the range's end. "mainlike" = main's r16 split of qkv / o / down (equal runs in 2 pieces, no evened-out runs)
    # and its shrink prefetch past the end (gate_up in 2 pieces instead of main's 4; r64 2 instead of 3-4).
    # "spread" = the next module's A and this range's Bᵀ requested into L2 in small bursts over the weight stream
    # (TSLORA_LORA_SPREAD_PREFETCH bits 1 | 2; lora-profile.ts times each alone).
    declare -A ENVS=(
      [default]=""
      [far]="TSLORA_GEMM_BASE_PREFETCH=1 TSLORA_GEMM_OWN_PREFETCH=3"
      [spread]="TSLORA_LORA_SPREAD_PREFETCH=3"
      [farspread]="TSLORA_GEMM_BASE_PREFETCH=1 TSLORA_GEMM_OWN_PREFETCH=3 TSLORA_LORA_SPREAD_PREFETCH=3"
      [mainlike]="TSLORA_GEMM_OWN_PREFETCH=0 TSLORA_GEMM_EPILOGUE_CHUNKS=2"
      [main]=""
    )
    VARIANTS=${ROUND_VARIANTS:-"default far spread farspread mainlike"}
    # On the device this copy sits at .devx/cpu17 inside main's tree: main's own CPU addon, where the round built it,
    # is the "main" variant (a whole-build baseline).
    [ -z "${MAIN_DIR:-}" ] && [ -f ../../build/Release/tslora_cpu.node ] && [ -f ../../bench/native/decode.ts ] && MAIN_DIR=$(cd ../.. && pwd)
    if [ -n "${MAIN_DIR:-}" ] && [ -f "$MAIN_DIR/build/Release/tslora_cpu.node" ]; then
      [[ " $VARIANTS " == *" main "* ]] || VARIANTS="$VARIANTS main"
      log "main variant: $MAIN_DIR ($(ls -l --time-style=+%T "$MAIN_DIR/build/Release/tslora_cpu.node" | awk '{print $6}'))"
    fi
    bench() {  # $1 = variant, $2 = round
      local v=$1 r=$2 dir=.
      [ "$v" = main ] && dir=$MAIN_DIR
      [ "$(left)" -lt 8 ] && { log "$v $r: skipped, $(left) s left"; return; }
      ( cd "$dir" && env ${ENVS[$v]} timeout $(( $(left) < PROC_S + 2 ? $(left) - 1 : PROC_S )) $PIN node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 30 --read-rate-steps 4 \
          --batch8-rounds 0 --prefill-rounds 0 --dir $D --out "$O/$v-$r.json" > "$O/$v-$r.txt" 2>&1 )
      log "$v $r: rc=$? $(grep -E '^(copy|batch 1|LoRA)' "$O/$v-$r.txt" | cut -c1-150 | tr '\n' ' ')"
    }
    profile() {  # $1 = label, $2 = environment ("" = none), then lora-profile.ts arguments
      local label=$1 envs=$2; shift 2
      [ "$(left)" -lt 16 ] && { log "profile $label: skipped, $(left) s left"; return; }
      env $envs timeout $(( $(left) < 22 ? $(left) - 2 : 20 )) $PIN node --import tsx bench/native/lora-profile.ts --steps 16 --schedules --dir $D --out "$O/profile-$label.json" "$@" > "$O/profile-$label.txt" 2>&1
      log "profile $label: rc=$? $(tr '\n' ' ' < "$O/profile-$label.txt" | cut -c1-400)"
    }
    round() { for v in $VARIANTS; do bench "$v" "$1"; done; }
    profile 1 ""
    # The tests of the touched code on this machine's own ISA: same bits under every schedule and prefetch flag
    # (evened-out runs, stop-at-end, far, next-A), fusion bits, the AVX-512 expand, PEFT parity.
    [ "$(left)" -gt 16 ] && TSLORA_REQUIRE_CUDA=0 timeout $(( $(left) < 31 ? $(left) - 1 : 30 )) $PIN node scripts/run-tests.mjs test/native/cpu-gemm-schedule.test.ts test/native/lora-fused-expand.test.ts \
      test/native/lora-fused-shrink.test.ts test/native/cpu-isa.test.ts test/native/parity.test.ts > "$O/tests.log" 2>&1
    log "tests (own ISA): rc=$? $(grep -E '^tslora tests' "$O/tests.log" | head -1) $(grep -E '^not ok' "$O/tests.log" | tr '\n' ' ')"
    round 1
    round 2
    round 3
    [ -n "${ROUND_EXTRA:-}" ] && for r in $(seq 4 $(( 3 + ROUND_EXTRA ))); do round $r; done
    profile 2 ""
    node summarize.mjs "$O" > "$O/summary.md" 2>&1
    cat "$O/summary.md" | tee -a "$O/progress-$MODE.log"
    ;;
  *) echo "usage: round.sh build|run"; exit 2 ;;
esac
log "done"
