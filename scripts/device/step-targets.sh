# Sourced by scripts/device/gpu-suite.sh when STEP_TARGETS=1 (issue #12), after the addon built: every figure of the
# issue's target table, before/after in the same run on the same GPU, then bench/cuda/step-targets.ts writes
# "$G/step-targets.json". Uses the suite's step / left / summary and $G. Order = value per second of device time.
#   (the suite measured the bandwidth already: bandwidth.json; the models were written during the build:
#    step-targets-synth.sh → synth.log)
#   decode-8b-*    synthetic Llama-3.1-8B, 8 r16 adapters, csgmv, batch 1 and 64 × base / shared / distinct,
#                  STEP_8B_PROCESSES before / after pairs (the table: the median of the "after" processes)
#   decode-1b-*    synthetic Llama-3.2-1B, csgmv, batch 1 / 8 / 64, plus the 8 × 512 prefill
#   serving        bench-configs/serving-overhead-h200.json (csgmv server, c1 and c64, variants no-overlap and after:
#                  graphs on, overlap scheduling off vs on); the ITL minus step row subtracts each level's own server
#                  decode step (its /metrics histogram)
#   triton-vs-csgmv  `tslora bench triton-vs-csgmv-h200` (c1-c128, one server per backend): the c128 ITL / E2E ratio row
#   host-overhead  bench/cuda/host-overhead.ts: the JavaScript of a decode step outside the forward, c1 / c64
#   lora-bench     bench/lora/device-run.sh (the per-layer microbenchmark; its kernel drivers only with
#                  SKIP_KERNEL_TESTS=0), when time is left
# "before" = the old defaults: decode steps eager (--cuda-graph-max-bs 0) and the LoRA shrink on the forward stream
# (TSLORA_CUDA_LORA_SIDE_STREAM=0); "after" = this code's defaults (graphs for batches ≤ 128, shrink on a side stream).
# STEP_BEFORE_ENV / STEP_BEFORE_GRAPHS replace the "before" side (e.g. one switch of this session's change off, graphs
# on, to A/B that change alone in the same run).
BEFORE_ENV=${STEP_BEFORE_ENV:-TSLORA_CUDA_LORA_SIDE_STREAM=0}
BEFORE_GRAPHS=${STEP_BEFORE_GRAPHS:-0}
AFTER_GRAPHS=128
# STEP_SKIP="decode-1b serving …": leave those steps out (a round that measures them elsewhere or lacks the time)
# STEP_STORE_FIRST=1 / 0: the table's prefill row as the engine runs with store-first on (the store-form kernels plus
# the base GEMMs' beta = 1 extra) or off; unset: step-targets.ts's STORE_FIRST_ON_BY_DEFAULT (forward.cu's default).
skipped() { [[ " ${STEP_SKIP:-} " == *" $1 "* ]] && summary "$1: SKIPPED (STEP_SKIP)"; }
wait "$SYNTH_PID"  # BWARG: set by the suite after its bandwidth step
summary "$(grep '^synth' "$G/synth.log" | tr '\n' ';') (written in the background during the build)"
B8=/tmp/tslora-bench-8b
# STEP_8B_PROCESSES (default 3) alternating before / after process pairs: the table takes the median of the "after"
# processes per row (an 8B step moves ±3-5 % between processes; 8 s each on an H100).
DECODE_8B_AFTER=()
if grep -q '^synth 8b rc=0' "$G/synth.log"; then
  for i in $(seq 1 "${STEP_8B_PROCESSES:-3}"); do
    for phase in before after; do
      if [[ $phase == before ]]; then envs=($BEFORE_ENV); graphs=$BEFORE_GRAPHS; else envs=(); graphs=$AFTER_GRAPHS; fi
      step "decode-8b-$phase-$i" 30 "decode-8b-$phase-$i.log" env "${envs[@]}" node --import tsx bench/cuda/decode.ts --model "$B8/model" \
        --adapters "$B8/adapters" --steps 10 --backends csgmv --batches 1,64 --no-prefill --cuda-graph-max-bs $graphs \
        --label "$phase" "${BWARG[@]}" --json "$G/decode-8b-$phase-$i.json"
      [[ $phase == after && -s $G/decode-8b-$phase-$i.json ]] && DECODE_8B_AFTER+=("$G/decode-8b-$phase-$i.json")
    done
  done
fi
B1=/tmp/tslora-bench-1b
if ! skipped decode-1b && grep -q '^synth 1b rc=0' "$G/synth.log"; then
  for phase in before after; do
    if [[ $phase == before ]]; then envs=($BEFORE_ENV); graphs=$BEFORE_GRAPHS; else envs=(); graphs=$AFTER_GRAPHS; fi
    step "decode-1b-$phase" 25 "decode-1b-$phase.log" env "${envs[@]}" node --import tsx bench/cuda/decode.ts --model "$B1/model" \
      --adapters "$B1/adapters" --steps 10 --backends csgmv --batches 1,8,64 --cuda-graph-max-bs $graphs \
      --label "$phase" "${BWARG[@]}" --json "$G/decode-1b-$phase.json"
  done
fi
if skipped serving; then :
elif (( $(left) >= 45 )); then
  # no-overlap vs after: graphs on both, overlap scheduling off vs on (the eager 'before' variant is left out for time)
  step serving 45 serving.log node bin/tslora.js bench serving-overhead-h200 --variants no-overlap,after --json --rounds 1 \
    --out /tmp/tslora-serving --startup-timeout 60
  cp /tmp/tslora-serving/results.json "$G/serving-results.json" 2>/dev/null
else
  summary "serving: SKIPPED (only $(left) s left)"
fi
# The backend comparison at concurrency 1-128 (the issue's c128 row; ~30 s on an H100 in session 11)
if skipped triton-vs-csgmv; then :
elif (( $(left) >= 60 )); then
  step triton-vs-csgmv 90 triton-vs-csgmv.log node bin/tslora.js bench triton-vs-csgmv-h200 --json --rounds 1 \
    --out /tmp/tslora-tvc --startup-timeout 60
  cp /tmp/tslora-tvc/results.json "$G/triton-vs-csgmv-results.json" 2>/dev/null
  mkdir -p "$G/triton-vs-csgmv" && cp /tmp/tslora-tvc/*.md /tmp/tslora-tvc/*.svg "$G/triton-vs-csgmv/" 2>/dev/null
else
  summary "triton-vs-csgmv: SKIPPED (only $(left) s left)"
fi
# The engine's JavaScript per decode step outside the forward, on this machine's CPU with the CUDA backend.
if ! skipped host-overhead && (( $(left) >= 60 )) && grep -q '^synth 1b rc=0' "$G/synth.log"; then
  step host-overhead 20 host-overhead.log node --import tsx bench/cuda/host-overhead.ts --device cuda --model "$B1/model" \
    --adapters "$B1/adapters" --concurrency 1,64
fi
if skipped lora-bench; then :
elif (( $(left) >= 45 )); then
  step lora-bench $(( $(left) - 12 )) lora-bench.log env OUT="$G/lora" SKIP_TORCH=1 SKIP_MEMCHECK=1 SKIP_KERNEL_TESTS=${SKIP_KERNEL_TESTS:-1} \
    TSLORA_BANDWIDTH_BYTES_PER_S="$(node -e "try{console.log(require('$G/bandwidth.json').floorBytesPerS)}catch{console.log(0)}")" \
    bash bench/lora/device-run.sh
else
  summary "lora-bench: SKIPPED (only $(left) s left)"
fi
STEPS_BUDGET_S=$(( STEPS_BUDGET_S + 15 ))  # the table is written even when the benchmarks used the whole budget (scripts/lib/timed-steps.sh)
step step-targets 15 step-targets.log node --import tsx bench/cuda/step-targets.ts --out "$G/step-targets.json" \
  --commit "${TSLORA_GIT_COMMIT:-unknown}" --bandwidth "$G/bandwidth.json" --decode-8b "$(IFS=,; echo "${DECODE_8B_AFTER[*]}")" \
  --lora-bench "$G/lora/bench.json" --decode-1b "$G/decode-1b-after.json" --serving "$G/serving-results.json" \
  --serving-variant after --triton-vs-csgmv "$G/triton-vs-csgmv-results.json" --gemm-accumulate "${AB_OUT:-$G/..}/gemm-accumulate.json" \
  ${STEP_STORE_FIRST:+--store-first "$STEP_STORE_FIRST"}
cat "$G/step-targets.log"
# Attribution, when time is left: the 8B decode with graphs on but the shrink on the forward stream.
if ! skipped graphs-only && (( $(left) >= 25 )) && grep -q '^synth 8b rc=0' "$G/synth.log"; then
  step decode-8b-graphs-only 22 decode-8b-graphs-only.log env $BEFORE_ENV node --import tsx bench/cuda/decode.ts --model "$B8/model" \
    --adapters "$B8/adapters" --steps 10 --backends csgmv --batches 1,64 --no-prefill --cuda-graph-max-bs $AFTER_GRAPHS \
    --label graphs-only "${BWARG[@]}" --json "$G/decode-8b-graphs-only.json"
fi
[[ ${KEEP_BENCH_8B:-0} == 1 ]] || rm -rf "$B8"  # KEEP_BENCH_8B=1: a follow-up call on the warm machine reuses it
