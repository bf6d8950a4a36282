#!/usr/bin/env bash
# cpu17, device round 1: issue 17's single-stream LoRA cost on the Xeon host (CPU only, 2 threads on CPUs 0-1, in the
# background beside the GPU jobs). Everything new is OFF by default in this build, so "default" = main's behaviour.
#   build: this copy's CPU addon (a PATH without nvcc), the synthetic 125M model + r16/r64 adapters (private dir)
#   run:   lora-profile.ts --schedules (in-process: base steps on owned ranges / 1 chunk / NTA / warm start, LoRA steps
#          with the same and the shrink's warm start), decode.ts processes alternating the env variants below (each
#          process: LoRA cost = median of per-step ratios against base steps of the same process, i.e. the same
#          schedule), the tests of the touched code on this CPU's own ISA (AVX-512 / AMX).
set -u
MODE=${1:-}
O=${ROUND_OUT:-/tmp/round-out}
LIMIT=${ROUND_LIMIT_S:-170}
mkdir -p "$O"
T0=$(date +%s)
D=/tmp/cpu17-bench
NODEBIN=$(dirname "$(command -v node)")
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/progress-$MODE.log"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0,1"
cpuonly() { TSLORA_BUILD_JOBS=6 PATH=$NODEBIN:/usr/bin:/bin "$@"; }

case "$MODE" in
  build)
    { lscpu; nvidia-smi --query-gpu=name --format=csv 2>&1; uname -r; cat /proc/meminfo | head -3; } > "$O/cpu.txt" 2>&1
    : > "$O/build-rc.txt"
    ( cpuonly timeout 190 node scripts/build-native.mjs --force > "$O/build-this.log" 2>&1; echo "this rc=$?" >> "$O/build-rc.txt" ) &
    ( timeout 150 node --import tsx bench/native/lora-profile.ts --generate --dir $D > "$O/generate.txt" 2>&1; echo "model + adapters rc=$?" >> "$O/build-rc.txt" ) &
    wait
    log "builds: $(tr '\n' ' ' < "$O/build-rc.txt")"
    ;;
  run)
    { echo "affinity: $(taskset -pc $$ 2>&1)"; nproc; uptime; } > "$O/run-env.txt" 2>&1
    node --import tsx -e "import { loadNativeTestingOps } from './src/binding/index.ts'; const o = loadNativeTestingOps(); console.log(JSON.stringify({ isa: o.cpuKernelIsa(), wideExpand: o.setLoraWideExpand(), epilogueChunks: o.setGemmEpilogueChunks(o.setGemmEpilogueChunks(0)), owned: o.setGemmOwnedRanges(o.setGemmOwnedRanges(0)), prefetch: o.setGemmPrefetchFlags(0, 0) }))" > "$O/defaults.txt" 2>&1
    log "this build's defaults: $(cat "$O/defaults.txt")"
    # decode.ts variants, by environment (every GEMM of the process): default; owned ranges for plain GEMMs (the base
    # step's own GEMMs; LoRA GEMMs as before); owned ranges for every GEMM; + far L2 prefetches (base, shrink) and the
    # shrink's warm start; + the next module's A prefetched into L2; owned + NTA base + the shrink's far / warm start.
    declare -A ENVS=(
      [default]=""
      [owned1]="TSLORA_GEMM_OWNED_RANGES=1"
      [owned2]="TSLORA_GEMM_OWNED_RANGES=2"
      [owned2far]="TSLORA_GEMM_OWNED_RANGES=2 TSLORA_GEMM_BASE_PREFETCH=4 TSLORA_GEMM_OWN_PREFETCH=6"
      [owned2farnext]="TSLORA_GEMM_OWNED_RANGES=2 TSLORA_GEMM_BASE_PREFETCH=4 TSLORA_GEMM_OWN_PREFETCH=6 TSLORA_LORA_PREFETCH_NEXT_SHRINK=1"
      [owned2nta]="TSLORA_GEMM_OWNED_RANGES=2 TSLORA_GEMM_BASE_PREFETCH=1 TSLORA_GEMM_OWN_PREFETCH=6"
    )
    bench() {  # $1 = variant, $2 = round
      local v=$1 r=$2
      [ "$(left)" -lt 8 ] && { log "$v $r: skipped, $(left) s left"; return; }
      env ${ENVS[$v]} timeout $(( $(left) < 14 ? $(left) - 1 : 12 )) $PIN node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 30 --read-rate-steps 4 \
          --batch8-rounds 0 --prefill-rounds 0 --dir $D --out "$O/$v-$r.json" > "$O/$v-$r.txt" 2>&1
      log "$v $r: rc=$? $(grep -E '^(copy|batch 1|LoRA)' "$O/$v-$r.txt" | cut -c1-150 | tr '\n' ' ')"
    }
    profile() {  # $1 = label, $2 = environment ("" = none), then lora-profile.ts arguments
      local label=$1 envs=$2; shift 2
      [ "$(left)" -lt 16 ] && { log "profile $label: skipped, $(left) s left"; return; }
      env $envs timeout $(( $(left) < 22 ? $(left) - 2 : 20 )) $PIN node --import tsx bench/native/lora-profile.ts --steps 16 --schedules --dir $D --out "$O/profile-$label.json" "$@" > "$O/profile-$label.txt" 2>&1
      log "profile $label: rc=$? $(tr '\n' ' ' < "$O/profile-$label.txt" | cut -c1-400)"
    }
    round() { for v in default owned2 owned2far owned1 owned2farnext owned2nta; do bench "$v" "$1"; done; }
    profile 1 ""
    # The tests of the touched code on this machine's own ISA (AVX-512 GEMV with the NTA / warm-start prefetches,
    # the AVX-512 expand under owned ranges): same bits under every schedule, fusion bits, PEFT parity.
    [ "$(left)" -gt 16 ] && TSLORA_REQUIRE_CUDA=0 timeout $(( $(left) < 31 ? $(left) - 1 : 30 )) $PIN node scripts/run-tests.mjs test/native/cpu-gemm-schedule.test.ts test/native/lora-fused-expand.test.ts \
      test/native/lora-fused-shrink.test.ts test/native/cpu-isa.test.ts test/native/parity.test.ts > "$O/tests.log" 2>&1
    log "tests (own ISA): rc=$? $(grep -E '^tslora tests' "$O/tests.log" | head -1) $(grep -E '^not ok' "$O/tests.log" | tr '\n' ' ')"
    round 1
    round 2
    # The expand's own prefetch (lora/cpu_expand.h, read once per process): also into L2 16 KiB ahead; each range's
    # first 32 KiB of Bᵀ requested into L2 before the GEMM computes the range's base columns.
    profile expandL2 "TSLORA_LORA_EXPAND_L2_BYTES=16384"
    profile 2 ""
    round 3
    profile early32k "TSLORA_LORA_EXPAND_EARLY_BYTES=32768"
    ;;
  *) echo "usage: round.sh build|run"; exit 2 ;;
esac
log "done"
