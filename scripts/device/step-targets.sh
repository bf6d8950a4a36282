# Sourced by scripts/device/gpu-suite.sh when STEP_TARGETS=1 (issue #12), after the addon built: every figure of the
# issue's target table, before/after in the same run on the same GPU, then bench/cuda/step-targets.ts writes
# "$G/step-targets.json". Uses the suite's step / left / summary and $G. Order = value per second of device time.
#   bandwidth      bench/cuda/bandwidth.cu (compiled during the build): read / copy / memcpy rates → bandwidth.json
#   decode-8b-*    synthetic Llama-3.1-8B, 8 r16 adapters, csgmv, batch 1 and 64 × base / shared / distinct
#   decode-1b-*    synthetic Llama-3.2-1B, csgmv, batch 1 / 8 / 64, plus the 8 × 512 prefill
#   serving        bench-configs/serving-overhead-h200.json (csgmv server, c1 and c64, graphs off vs on)
#   lora-bench     bench/lora/device-run.sh (the per-layer microbenchmark; its kernel drivers only with
#                  SKIP_KERNEL_TESTS=0), when time is left
# "before" = the old defaults: decode steps eager (--cuda-graph-max-bs 0) and the LoRA shrink on the forward stream
# (TSLORA_CUDA_LORA_SIDE_STREAM=0); "after" = this code's defaults (graphs for batches ≤ 128, shrink on a side stream).
BEFORE_ENV="TSLORA_CUDA_LORA_SIDE_STREAM=0"
BEFORE_GRAPHS=0
AFTER_GRAPHS=128
[[ -n ${BW_PID:-} ]] && wait "$BW_PID"
step bandwidth 30 bandwidth.log /tmp/tslora-bandwidth "$G/bandwidth.json"
BWARG=()
[[ -s $G/bandwidth.json ]] && BWARG=(--bandwidth "$G/bandwidth.json")
B8=/tmp/tslora-bench-8b
if step synth-8b 60 synth-8b.log bash -c "node bin/tslora.js synth model --shape llama-3.1-8b --out $B8/model && node bin/tslora.js synth adapters --model $B8/model --count 8 --rank 16 --targets all --out $B8/adapters"; then
  for phase in before after; do
    if [[ $phase == before ]]; then envs=($BEFORE_ENV); graphs=$BEFORE_GRAPHS; else envs=(); graphs=$AFTER_GRAPHS; fi
    step "decode-8b-$phase" 45 "decode-8b-$phase.log" env "${envs[@]}" node --import tsx bench/cuda/decode.ts --model "$B8/model" \
      --adapters "$B8/adapters" --steps 10 --backends csgmv --batches 1,64 --no-prefill --cuda-graph-max-bs $graphs \
      --label "$phase" "${BWARG[@]}" --json "$G/decode-8b-$phase.json"
  done
fi
rm -rf "$B8"
B1=/tmp/tslora-bench-1b
if step synth-1b 30 synth-1b.log bash -c "node bin/tslora.js synth model --shape llama-3.2-1b --out $B1/model && node bin/tslora.js synth adapters --model $B1/model --count 8 --rank 16 --targets all --out $B1/adapters"; then
  for phase in before after; do
    if [[ $phase == before ]]; then envs=($BEFORE_ENV); graphs=$BEFORE_GRAPHS; else envs=(); graphs=$AFTER_GRAPHS; fi
    step "decode-1b-$phase" 30 "decode-1b-$phase.log" env "${envs[@]}" node --import tsx bench/cuda/decode.ts --model "$B1/model" \
      --adapters "$B1/adapters" --steps 10 --backends csgmv --batches 1,8,64 --cuda-graph-max-bs $graphs \
      --label "$phase" "${BWARG[@]}" --json "$G/decode-1b-$phase.json"
  done
fi
if (( $(left) >= 55 )); then
  step serving 50 serving.log node bin/tslora.js bench serving-overhead-h200 --json --rounds 1 --out /tmp/tslora-serving \
    --startup-timeout 60
  cp /tmp/tslora-serving/results.json "$G/serving-results.json" 2>/dev/null
else
  summary "serving: SKIPPED (only $(left) s left)"
fi
if (( $(left) >= 45 )); then
  step lora-bench $(( $(left) - 12 )) lora-bench.log env OUT="$G/lora" SKIP_TORCH=1 SKIP_MEMCHECK=1 SKIP_KERNEL_TESTS=${SKIP_KERNEL_TESTS:-1} \
    TSLORA_BANDWIDTH_BYTES_PER_S="$(node -e "try{console.log(require('$G/bandwidth.json').floorBytesPerS)}catch{console.log(0)}")" \
    bash bench/lora/device-run.sh
else
  summary "lora-bench: SKIPPED (only $(left) s left)"
fi
BUDGET_S=$(( BUDGET_S + 15 ))  # the table is written even when the benchmarks used the whole budget
step step-targets 15 step-targets.log node --import tsx bench/cuda/step-targets.ts --out "$G/step-targets.json" \
  --commit "${TSLORA_GIT_COMMIT:-unknown}" --bandwidth "$G/bandwidth.json" --decode-8b "$G/decode-8b-after.json" \
  --lora-bench "$G/lora/bench.json" --decode-1b "$G/decode-1b-after.json" --serving "$G/serving-results.json" \
  --serving-variant after
cat "$G/step-targets.log"
