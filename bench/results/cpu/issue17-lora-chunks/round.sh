#!/usr/bin/env bash
# cpur16, device round 1: issue 17's single-stream LoRA cost on the Xeon host (CPU only, 2 threads on CPUs 0-1,
# in the background beside the GPU jobs).
#   build: this copy's CPU addon (a PATH without nvcc); a baseline copy (main a195ff7 = this branch's base,
#          round-baseline-a195ff7.tgz) with its own CPU addon and this copy's decode.ts; the synthetic 125M model +
#          r16/r64 adapters (private dir)
#   run:   the fusion tests (the AVX-512 expand's bitwise case on; GEMM chunk counts), then decode.ts of this copy
#          (defaults) and of the baseline in alternating processes (each process: base / fused / other expand copy /
#          other GEMM chunk choice / shrink-only / unfused steps alternating); lora-profile.ts between them
set -u
MODE=${1:-}
O=${ROUND_OUT:-/tmp/round-out}
LIMIT=${ROUND_LIMIT_S:-150}
mkdir -p "$O"
T0=$(date +%s)
ROOT=$PWD
B=/tmp/cpur16-baseline
D=/tmp/cpur16-bench
NODEBIN=$(dirname "$(command -v node)")
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/progress-$MODE.log"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0,1"
cpuonly() { TSLORA_BUILD_JOBS=6 PATH=$NODEBIN:/usr/bin:/bin "$@"; }

case "$MODE" in
  build)
    { lscpu; nvidia-smi --query-gpu=name --format=csv 2>&1; uname -r; } > "$O/cpu.txt" 2>&1
    : > "$O/build-rc.txt"
    ( cpuonly timeout 180 node scripts/build-native.mjs --force > "$O/build-this.log" 2>&1; echo "this rc=$?" >> "$O/build-rc.txt" ) &
    ( timeout 120 node --import tsx bench/native/lora-profile.ts --generate --dir $D > "$O/generate.txt" 2>&1; echo "model + adapters rc=$?" >> "$O/build-rc.txt" ) &
    rm -rf "$B" && mkdir -p "$B/node_modules" && tar -xzf round-baseline-a195ff7.tgz -C "$B"
    mods=$(readlink -f "$ROOT/node_modules")
    for e in "$mods"/* "$mods"/.bin; do ln -s "$e" "$B/node_modules/"; done
    rm "$B/node_modules/node-addon-api" && cp -r "$mods/node-addon-api" "$B/node_modules/"
    cp bench/native/decode.ts bench/native/bench-model.ts "$B/bench/native/"  # the same benchmark for both builds
    ( cd "$B" && cpuonly timeout 180 node scripts/build-native.mjs --force > "$O/build-baseline.log" 2>&1; echo "baseline rc=$?" >> "$O/build-rc.txt" ) &
    wait
    log "builds: $(tr '\n' ' ' < "$O/build-rc.txt")"
    ;;
  run)
    { echo "affinity: $(taskset -pc $$ 2>&1)"; nproc; uptime; } > "$O/run-env.txt" 2>&1
    node --import tsx -e "import { loadNativeTestingOps } from './src/binding/index.ts'; const o = loadNativeTestingOps(); console.log(JSON.stringify({ isa: o.cpuKernelIsa(), wideExpand: o.setLoraWideExpand(), epilogueChunks: o.setGemmEpilogueChunks(o.setGemmEpilogueChunks(0)) }))" > "$O/defaults.txt" 2>&1
    log "this build's defaults: $(cat "$O/defaults.txt")"
    bench() {  # $1 = this | baseline, $2 = label, then extra decode.ts arguments
      local who=$1 label=$2 dir=$ROOT; shift 2; [ "$who" = baseline ] && dir=$B
      [ "$(left)" -lt 14 ] && { log "$who $label: skipped, $(left) s left"; return; }
      ( cd "$dir" && timeout 12 $PIN node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 30 --read-rate-steps 4 \
          --batch8-rounds 0 --prefill-rounds 0 --dir $D --out "$O/$who-$label.json" "$@" > "$O/$who-$label.txt" 2>&1 )
      log "$who $label: rc=$? $(grep -E '^(copy|batch 1|LoRA)' "$O/$who-$label.txt" | tr '\n' ' ')"
    }
    profile() {  # $1 = label, then lora-profile.ts arguments
      local label=$1; shift
      [ "$(left)" -lt 14 ] && { log "profile $label: skipped, $(left) s left"; return; }
      timeout 12 $PIN node --import tsx bench/native/lora-profile.ts --steps 24 --dir $D --out "$O/profile-$label.json" "$@" > "$O/profile-$label.txt" 2>&1
      log "profile $label: rc=$? $(tr '\n' ' ' < "$O/profile-$label.txt")"
    }
    bench this 1; bench baseline 1; bench this 2; bench baseline 2
    profile 1 --min-chunk-kib 8,32
    bench this 3; bench baseline 3
    # The fusion tests on the machine's own ISA: the AVX-512 expand's bitwise case runs here, and the fused expand
    # equals the separate pass at every GEMM chunk count.
    TSLORA_REQUIRE_CUDA=0 timeout 25 $PIN node scripts/run-tests.mjs test/native/lora-fused-expand.test.ts test/native/lora-fused-shrink.test.ts \
      test/native/cpu-isa.test.ts test/native/parity.test.ts > "$O/tests.log" 2>&1
    log "tests (own ISA): rc=$? $(grep -E '^tslora tests' "$O/tests.log") $(grep -E 'skipped .* case' "$O/tests.log" | tr '\n' ' ')"
    bench this 4; bench baseline 4
    profile 2 --min-chunk-kib 8,32
    bench this 5; bench baseline 5; bench this 6; bench baseline 6
    ;;
  *) echo "usage: round.sh build|run"; exit 2 ;;
esac
log "done"
