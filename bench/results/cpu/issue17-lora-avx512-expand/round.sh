#!/usr/bin/env bash
# cpur64, device round 1: issue 17's single-stream LoRA cost on the Xeon host (CPU only, 2 threads on CPUs 0-1).
#   build: this copy's CPU addon; a baseline copy (main 5fb30d4 = this branch's base, round-baseline-*.tgz) with its
#          own addon; the synthetic 125M model + r16/r64 adapters (private dir); the LoRA kernel test driver (cached)
#   run:   the native tests touched, on the machine's own ISA (amx; TSLORA_LORA_WIDE_EXPAND=1: the AVX-512 expand,
#          off by default until measured, in use); then decode.ts of
#          this copy and of the baseline in alternating processes (each process: base / fused / 8-lane-expand /
#          shrink-only / unfused steps alternating, copy bandwidth sampled in the same process); lora-profile.ts
#          (where the LoRA step's thread time goes; in-process variants: AVX-512 / 8-lane expand, 4 / 2 / 1 GEMM
#          chunks per thread; also with the expand's prefetch off / at 16 KiB / 64 KiB early into L2); one 1-thread
#          decode.ts of this copy
set -u
MODE=${1:-}
O=${ROUND_OUT:-/tmp/round-out}
LIMIT=${ROUND_LIMIT_S:-150}
mkdir -p "$O"
T0=$(date +%s)
ROOT=$PWD
B=/tmp/cpur64-baseline
D=/tmp/cpur64-bench
NODEBIN=$(dirname "$(command -v node)")
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/progress-$MODE.log"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0,1"
cpuonly() { TSLORA_BUILD_JOBS=6 PATH=$NODEBIN:/usr/bin:/bin "$@"; }

case "$MODE" in
  build)
    { lscpu; nvidia-smi --query-gpu=name --format=csv 2>&1; uname -r; } > "$O/cpu.txt" 2>&1
    ( cpuonly timeout 170 node scripts/build-native.mjs --force > "$O/build-this.log" 2>&1; echo "this rc=$?" >> "$O/build-rc.txt" ) &
    ( timeout 120 node --import tsx bench/native/lora-profile.ts --generate --dir $D > "$O/generate.txt" 2>&1; echo "model + adapters rc=$?" >> "$O/build-rc.txt" ) &
    ( TSLORA_REQUIRE_CUDA=0 timeout 170 node scripts/run-tests.mjs test/native/lora-kernels.test.ts > "$O/tests-build-lora-kernels.log" 2>&1
      echo "lora-kernels driver build + test rc=$?" >> "$O/build-rc.txt" ) &
    rm -rf "$B" && mkdir -p "$B/node_modules" && tar -xzf round-baseline-5fb30d4.tgz -C "$B"
    mods=$(readlink -f "$ROOT/node_modules")
    for e in "$mods"/* "$mods"/.bin; do ln -s "$e" "$B/node_modules/"; done
    rm "$B/node_modules/node-addon-api" && cp -r "$mods/node-addon-api" "$B/node_modules/"
    cp bench/native/decode.ts "$B/bench/native/"  # the same benchmark for both builds (the baseline lacks the 8-lane switch: NaN)
    ( cd "$B" && cpuonly timeout 170 node scripts/build-native.mjs --force > "$O/build-baseline.log" 2>&1; echo "baseline rc=$?" >> "$O/build-rc.txt" ) &
    wait
    log "builds: $(tr '\n' ' ' < "$O/build-rc.txt")"
    ;;
  run)
    { echo "affinity: $(taskset -pc $$ 2>&1)"; nproc; uptime; } > "$O/run-env.txt" 2>&1
    TSLORA_LORA_WIDE_EXPAND=1 TSLORA_REQUIRE_CUDA=0 timeout 40 $PIN node scripts/run-tests.mjs test/native/lora-fused-expand.test.ts test/native/lora-fused-shrink.test.ts \
      test/native/cpu-isa.test.ts test/native/lora-kernels.test.ts > "$O/tests.log" 2>&1
    log "tests (own ISA): rc=$? $(grep -E '^tslora tests' "$O/tests.log") $(grep -E 'skipped .* case' "$O/tests.log" | tr '\n' ' ')"
    bench() {  # $1 = this | baseline, $2 = label, then extra decode.ts arguments
      local who=$1 label=$2 dir=$ROOT; shift 2; [ "$who" = baseline ] && dir=$B
      [ "$(left)" -lt 16 ] && { log "$who $label: skipped, $(left) s left"; return; }
      ( cd "$dir" && TSLORA_LORA_WIDE_EXPAND=1 timeout 15 $PIN node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 36 --read-rate-steps 4 \
          --batch8-rounds 0 --prefill-rounds 0 --dir $D --out "$O/$who-$label.json" "$@" > "$O/$who-$label.txt" 2>&1 )
      log "$who $label: rc=$? $(grep -E '^(copy|batch 1|LoRA)' "$O/$who-$label.txt" | tr '\n' ' ')"
    }
    profile() {  # $1 = label, $2 = env assignments (the expand's prefetch settings), then lora-profile.ts arguments
      local label=$1 envs=$2; shift 2
      [ "$(left)" -lt 14 ] && { log "profile $label: skipped, $(left) s left"; return; }
      env $envs timeout 12 $PIN node --import tsx bench/native/lora-profile.ts --steps 24 --dir $D --out "$O/profile-$label.json" "$@" > "$O/profile-$label.txt" 2>&1
      log "profile $label: rc=$? $(tr '\n' ' ' < "$O/profile-$label.txt")"
    }
    bench this 1; bench baseline 1; bench this 2; bench baseline 2
    profile 1 TSLORA_LORA_EXPAND_PREFETCH_BYTES=4096
    bench this 3; bench baseline 3
    profile pf0 TSLORA_LORA_EXPAND_PREFETCH_BYTES=0 --ranks 64; profile pf16k TSLORA_LORA_EXPAND_PREFETCH_BYTES=16384 --ranks 64
    profile early64k TSLORA_LORA_EXPAND_EARLY_BYTES=65536 --ranks 64
    bench this t1 --threads 1 --ranks 64
    bench this 4; bench baseline 4
    profile 2 TSLORA_LORA_EXPAND_PREFETCH_BYTES=4096
    profile 3 TSLORA_LORA_EXPAND_PREFETCH_BYTES=4096
    ;;
  *) echo "usage: round.sh build|run"; exit 2 ;;
esac
log "done"
