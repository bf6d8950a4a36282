#!/usr/bin/env bash
# Issue 17 on the GPU machine's Intel Xeon host (AMX-BF16): the CPU prefill tile GEMM, CPU only, <= 60 s per mode.
# Run from the repository root (node on PATH, node_modules present); logs go to "$FINAL_OUT/amx17/".
#   bash scripts/device/amx17-final.sh tests   correctness, may run while the CUDA addon builds: builds its own CPU
#                                              addon in /tmp/amx17-final (the repo's build/ may be rebuilt meanwhile)
#                                              and runs the CPU-path native tests with the amx copy active, with
#                                              TSLORA_AMX_VECTOR_EDGES off and on (default)
#   bash scripts/device/amx17-final.sh bench   on a quiet machine, 2 threads pinned to CPUs 0,1 (the issue's 2-vCPU
#                                              kind): prefill GEMM GFLOP/s (bench/native/gemm.ts) and whole prefill tok/s
#                                              (bench/native/decode.ts --vs-isa avx512), amx vs the avx512 FMA copy of the
#                                              same build, both TSLORA_AMX_VECTOR_EDGES settings
#   bash scripts/device/amx17-final.sh lora    single-stream decode LoRA cost (r16, r64, csgmv, bf16 pool), 2 threads
#                                              pinned to CPUs 0,1, three processes (each alternates base and adapter
#                                              steps, fused / 8-lane expand / shrink-only / unfused), on the copy
#                                              'tests' built; then lora-profile.ts (where the LoRA step's time goes)
set -u
MODE=${1:-}
ROOT=$PWD
O=${FINAL_OUT:-/tmp/final-out}/amx17
W=/tmp/amx17-final
mkdir -p "$O"
T0=$(date +%s)
NODEBIN=$(dirname "$(command -v node)")
log() { echo "[$(date -u +%T) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/progress-$MODE.log"; }
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0,1"

# A private copy with its own CPU addon (CPU only: a PATH without nvcc), node_modules linked package by package
# with node-addon-api copied (node-gyp's relative include paths break through a far symlink).
build_copy() {
  rm -rf "$W" && mkdir -p "$W/node_modules" "$W/test"
  cp -r "$ROOT/native" "$ROOT/src" "$ROOT/scripts" "$ROOT/bench" "$ROOT/binding.gyp" "$ROOT/package.json" "$ROOT/tsconfig.json" "$W/"
  cp -r "$ROOT/test/native" "$W/test/" && ln -s "$ROOT/test/fixtures" "$W/test/fixtures"
  local mods; mods=$(readlink -f "$ROOT/node_modules")
  for e in "$mods"/* "$mods"/.bin; do ln -s "$e" "$W/node_modules/"; done
  rm "$W/node_modules/node-addon-api" && cp -r "$mods/node-addon-api" "$W/node_modules/"
  ( cd "$W" && TSLORA_BUILD_JOBS=8 PATH=$NODEBIN:/usr/bin:/bin timeout "${AMX17_BUILD_S:-32}" node scripts/build-native.mjs --force > "$O/build.log" 2>&1 )
}

case "$MODE" in
  tests)
    { lscpu; echo "siblings of cpu0: $(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null)"; uname -r; } > "$O/cpu.txt" 2>&1
    build_copy; log "CPU addon build rc=$?"
    cd "$W" || exit 1
    node --import tsx -e "import { loadNativeTestingOps } from './src/binding/index.ts'; console.log(JSON.stringify(loadNativeTestingOps().cpuKernelIsa()))" > "$O/isa.txt" 2>&1
    log "kernels: $(cat "$O/isa.txt")"
    files="test/native/cpu-isa.test.ts test/native/parity.test.ts test/native/forward-model.test.ts test/native/lora-fused-shrink.test.ts test/native/lora-fused-expand.test.ts test/native/tensor-parallel.test.ts"
    TSLORA_AMX_VECTOR_EDGES=0 TSLORA_REQUIRE_CUDA=0 timeout 12 node scripts/run-tests.mjs $files > "$O/tests-edges0.log" 2>&1
    log "tests, TSLORA_AMX_VECTOR_EDGES=0: rc=$? $(grep -E '^tslora tests' "$O/tests-edges0.log")"
    TSLORA_AMX_VECTOR_EDGES=1 TSLORA_REQUIRE_CUDA=0 timeout 12 node scripts/run-tests.mjs $files > "$O/tests-edges1.log" 2>&1
    log "tests, vector edges on (default): rc=$? $(grep -E '^tslora tests' "$O/tests-edges1.log")"
    ;;
  bench)
    [ -f "$W/build/Release/tslora_cpu.node" ] || { build_copy; log "CPU addon build rc=$?"; }
    cd "$W" || exit 1
    for edges in 0 1; do
      TSLORA_AMX_VECTOR_EDGES=$edges timeout 8 $PIN node --import tsx bench/native/gemm.ts --isas avx512,amx --rows 256 --threads 2 --rounds 5 --out "$O/gemm-edges$edges.json" > "$O/gemm-edges$edges.txt" 2>&1
      log "gemm, edges $edges: rc=$? $(tr '\n' ' ' < "$O/gemm-edges$edges.txt")"
    done
    for edges in 0 1; do
      TSLORA_AMX_VECTOR_EDGES=$edges timeout 18 $PIN node --import tsx bench/native/decode.ts --preset 125m --skip-lora --steps 4 --prefill-rounds 5 --vs-isa avx512 --out "$O/decode-edges$edges.json" > "$O/decode-edges$edges.txt" 2>&1
      log "prefill, edges $edges: rc=$? $(grep -E '^prefill' "$O/decode-edges$edges.txt" | tr '\n' ' ')"
    done
    ;;
  lora)
    [ -f "$W/build/Release/tslora_cpu.node" ] || { build_copy; log "CPU addon build rc=$?"; }
    cd "$W" || exit 1
    for round in 1 2 3; do
      timeout $(( round == 1 ? 25 : 12 )) $PIN node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 30 --read-rate-steps 4 \
        --batch8-rounds 0 --prefill-rounds 0 --dir /tmp/amx17-lora-model --out "$O/lora-$round.json" > "$O/lora-$round.txt" 2>&1
      log "lora round $round: rc=$? $(grep -E '^(batch 1|LoRA)' "$O/lora-$round.txt" | tr '\n' ' ')"
    done
    timeout 12 $PIN node --import tsx bench/native/lora-profile.ts --steps 24 --dir /tmp/amx17-lora-model --out "$O/lora-profile.json" > "$O/lora-profile.txt" 2>&1
    log "lora profile: rc=$? $(tr '\n' ' ' < "$O/lora-profile.txt")"
    # The session-14 candidates, alternating with the default in separate processes: the AVX-512 expand on
    # (TSLORA_LORA_WIDE_EXPAND=1; decode.ts also times the other copy in-process), one GEMM chunk per thread.
    for round in 4 5; do
      for v in "TSLORA_LORA_WIDE_EXPAND=1" "TSLORA_LORA_WIDE_EXPAND=1 TSLORA_GEMM_EPILOGUE_CHUNKS=1" "TSLORA_GEMM_EPILOGUE_CHUNKS=4"; do
        tag=$(echo "$v" | tr -c 'A-Za-z0-9=\n' '_' | sed 's/TSLORA_//g')
        env $v timeout 12 $PIN node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 30 --read-rate-steps 4 \
          --batch8-rounds 0 --prefill-rounds 0 --dir /tmp/amx17-lora-model --out "$O/lora-$round-$tag.json" > "$O/lora-$round-$tag.txt" 2>&1
        log "lora round $round, $v: rc=$? $(grep -E '^(batch 1|LoRA)' "$O/lora-$round-$tag.txt" | tr '\n' ' ')"
      done
    done
    ;;
  *) echo "usage: amx17-final.sh tests|bench|lora"; exit 2 ;;
esac
log "done"
