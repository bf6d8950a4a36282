#!/usr/bin/env bash
# Session 18 device round of helper "sidex" (issue #12: the LoRA side expand, TSLORA_CUDA_LORA_SIDE_EXPAND). Run from
# the repository root after `source .device-carry/prelude.sh`:
#   ROUND_OUT=$OUT/sidex ROUND_LIMIT_S=420 bash scripts/device/sidex-round.sh
# Everything lands in "$ROUND_OUT" (default $OUT/sidex): summary.txt (one line per step: status, seconds), the logs,
# side-expand-ab-8b.log / .json (the A/B table). Steps, each cut to what is left of ROUND_LIMIT_S:
#   1. tsc, then (background) the 1B PEFT reference (scripts/device/make-1b-reference.py, python + torch) and the
#      synthetic Llama-3.1-8B with 8 r16 adapters (scripts/device/step-targets-synth.sh's commands), and the CUDA addon
#      build (all cores);
#   2. GPU tests, at most GPU_TESTS_LIMIT_S (default 200 s, and 75 s are kept for step 3): test/gpu/cuda-side-expand
#      first (on vs off bit-identical, the consumers' delta inputs on this GPU), then, with TSLORA_CUDA_LORA_SIDE_EXPAND=1,
#      graphs vs eager, tiny-model and 1B PEFT parity, PDL / side stream bit-identity, LoRA kernels,
#      skinny GEMM;
#   3. 8B synthetic decode A/B in one process (bench/cuda/side-expand-ab.ts: three models, SIDE_EXPAND=0, =1, and =1
#      with SIDE_EXPAND_PDL=0, read at construction), csgmv, graphs on (max batch 128), batch 1, 2, 32 and 64 x base /
#      shared / distinct (graph buckets 3-16 run the tiled LoRA kernels, which keep the in-place expand; base rows are the
#      A/B's noise control), 7 rounds of 10 timed steps per variant, order rotating → side-expand-ab-8b.{log,json}
#      (median, range, ratio to off, LoRA cost);
#      then, when 60 s are left, the same with graphs off at batch 1 and 64 → side-expand-ab-8b-eager.{log,json}.
set -u
OUT=${OUT:-/tmp/tslora-out}
R=${ROUND_OUT:-$OUT/sidex}
LIMIT_S=${ROUND_LIMIT_S:-420}
mkdir -p "$R"
T0=$(date +%s)
STEPS_BUDGET_S=$LIMIT_S STEPS_T0=$T0 STEPS_LOG_DIR=$R STEPS_SUMMARY=$R/summary.txt STEPS_RESERVE_S=5
source "$(dirname "${BASH_SOURCE[0]}")/../lib/timed-steps.sh"  # summary, left, step
: > "$R/summary.txt"
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv; nvcc --version | tail -1; node -v; nproc
  git log -1 --format='%H %s' 2>/dev/null; } > "$R/machine.txt" 2>&1
export TSLORA_BUILD_JOBS=$(nproc) PYTHONUNBUFFERED=1

step tsc 40 tsc.log npx tsc -p tsconfig.json || true  # emits dist even with type errors elsewhere
REF=/tmp/tslora-1b
( timeout -k 5 200 python3 scripts/device/make-1b-reference.py --out "$REF" --layers 4 > "$R/make-1b-reference.log" 2>&1
  echo "make-1b-reference rc=$?" >> "$R/background.log" ) &
B8=/tmp/tslora-bench-8b
( s=$(date +%s); rm -rf "$B8"
  timeout -k 5 150 node bin/tslora.js synth model --shape llama-3.1-8b --out "$B8/model" &&
    timeout -k 5 60 node bin/tslora.js synth adapters --model "$B8/model" --count 8 --rank 16 --targets all --out "$B8/adapters"
  echo "synth 8b rc=$? ($(( $(date +%s) - s )) s)" >> "$R/background.log" ) > "$R/synth.log" 2>&1 &
SYNTH_PID=$!
step build-cuda 170 build.log node scripts/build-native.mjs --force --cuda
build_rc=$?
if (( build_rc != 0 )); then summary "everything else: SKIPPED (the CUDA addon did not build; build.log)"; exit 0; fi

# 2. GPU tests (the 1B parity test needs the reference: waited for, within the step's own limit)
export TSLORA_1B_REFERENCE="$REF/reference.json"
tests_limit=$(( $(left) - 75 )); (( tests_limit > ${GPU_TESTS_LIMIT_S:-200} )) && tests_limit=${GPU_TESTS_LIMIT_S:-200}
tests_end=$(( $(date +%s) + tests_limit ))  # every test file shares tests_limit
step gpu-side-expand $(( tests_limit < 90 ? tests_limit : 90 )) gpu-side-expand.log \
  node --import tsx --test test/gpu/cuda-side-expand.test.ts
# The other files with the side expand on (explicitly: the default may change): parity and graphs vs eager through it.
export TSLORA_CUDA_LORA_SIDE_EXPAND=1
for t in cuda-graphs cuda-parity-fixtures cuda-parity-1b cuda-pdl lora-kernels skinny-gemm; do
  rem=$(( tests_end - $(date +%s) )); (( rem > $(left) - 75 )) && rem=$(( $(left) - 75 ))
  (( rem < 15 )) && { summary "gpu $t: SKIPPED (kept for the A/B)"; continue; }
  if [[ $t == cuda-parity-1b ]]; then  # its reference comes from the background job
    while ! grep -q make-1b-reference "$R/background.log" 2>/dev/null && (( $(left) > 90 )); do sleep 2; done
  fi
  step "gpu $t" $rem "gpu-$t.log" node --import tsx --test "test/gpu/$t.test.ts"
done
grep -hE "^# (tests|pass|fail|skipped)|^not ok|^# Subtest" "$R"/gpu-*.log > "$R/gpu-tests-summary.txt" 2>/dev/null
unset TSLORA_CUDA_LORA_SIDE_EXPAND

# 3. 8B decode A/B: both models in one process, alternating rounds (bench/cuda/side-expand-ab.ts)
wait "$SYNTH_PID"
cat "$R/background.log"
if grep -q 'synth 8b rc=0' "$R/background.log"; then
  step side-expand-ab-8b $(( $(left) - 8 )) side-expand-ab-8b.log node --import tsx bench/cuda/side-expand-ab.ts \
    --model "$B8/model" --adapters "$B8/adapters" --backend csgmv --cuda-graph-max-bs 128 --batches 1,2,32,64 \
    --rounds 7 --steps 10 --nopdl --markdown --json "$R/side-expand-ab-8b.json"
  tail -14 "$R/side-expand-ab-8b.log"
  if (( $(left) >= 60 )); then  # the same without graphs (eager steps), when time is left
    step side-expand-ab-8b-eager $(( $(left) - 8 )) side-expand-ab-8b-eager.log node --import tsx bench/cuda/side-expand-ab.ts \
      --model "$B8/model" --adapters "$B8/adapters" --backend csgmv --cuda-graph-max-bs 0 --batches 1,64 \
      --rounds 7 --steps 10 --markdown --json "$R/side-expand-ab-8b-eager.json"
    tail -10 "$R/side-expand-ab-8b-eager.log"
  fi
else
  summary "side-expand-ab-8b: SKIPPED (the synthetic 8B model was not written; synth.log)"
fi
rm -rf "$B8"
summary "total: $(( $(date +%s) - T0 )) s"
