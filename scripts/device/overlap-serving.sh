# Issue #12, overlap scheduling on the GPU (run after scripts/device/gpu-suite.sh built the CUDA addon, from the
# repository root; every step time-boxed; logs and JSON under "$OUT/ovl"):
#   1. tslora bench serving-overhead-h200, variants $VARIANTS (default no-overlap,after: graphs on, overlap off vs on),
#      each level's ITL p50 next to the same server's own decode-step p50 (tslora_engine_step_seconds)
#   2. bench/cuda/step-targets.ts on that run alone, once per variant → step-targets-<variant>.json (only the serving
#      row is measured here; the other rows say so)
#   3. bench/cuda/host-overhead.ts with the CUDA backend on a synthetic Llama-3.2-1B, overlap off and on, c1 / c64
# Env: OUT, VARIANTS, SERVING_LIMIT_S (default 110), HOST_LIMIT_S (default 50), TSLORA_GIT_COMMIT.
set -u
O="${OUT:-/tmp/tslora-ovl}/ovl"
mkdir -p "$O"
VARIANTS=${VARIANTS:-no-overlap,after}
note() { echo "$1" | tee -a "$O/summary.txt"; }
s=$(date +%s)
timeout --kill-after=5 "${SERVING_LIMIT_S:-110}" node bin/tslora.js bench serving-overhead-h200 --variants "$VARIANTS" --json \
  --rounds 1 --out /tmp/tslora-serving --startup-timeout 60 > "$O/serving.log" 2>&1
note "serving ($VARIANTS): rc=$? ($(( $(date +%s) - s )) s)"
cp /tmp/tslora-serving/results.json "$O/serving-results.json" 2>/dev/null
for variant in ${VARIANTS//,/ }; do
  node --import tsx bench/cuda/step-targets.ts --out "$O/step-targets-$variant.json" --commit "${TSLORA_GIT_COMMIT:-unknown}" \
    --gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" --serving "$O/serving-results.json" \
    --serving-variant "$variant" 2>&1 | grep "server ITL" | sed "s/^/$variant: /" | tee -a "$O/summary.txt"
done
node -e "
const r = require('$O/serving-results.json');
for (const s of r.summaries.filter((x) => x.level)) console.log(s.run, 'ITL p50', s.itl.p50.toFixed(3), 'ms; server decode step p50',
  s.engineStep ? s.engineStep.decodeStepP50Ms.toFixed(3) + ' ms (mean ' + s.engineStep.decodeStepMeanMs.toFixed(3) + ', ' + s.engineStep.decodeSteps + ' steps)' : 'n/a',
  '; ITL - step', s.engineStep ? (s.itl.p50 - s.engineStep.decodeStepP50Ms).toFixed(3) : 'n/a', 'ms; E2E p50', s.e2e.p50.toFixed(1), 'ms; out tok/s', s.outputTokPerS.toFixed(0), '; errors', s.errors);
" 2>&1 | tee -a "$O/summary.txt"
B=/tmp/tslora-bench-1b
if [[ ! -f $B/adapters/lora-7/adapter_config.json ]]; then
  node bin/tslora.js synth model --shape llama-3.2-1b --out "$B/model" > "$O/synth.log" 2>&1 &&
    node bin/tslora.js synth adapters --model "$B/model" --count 8 --rank 16 --targets all --out "$B/adapters" >> "$O/synth.log" 2>&1
fi
s=$(date +%s)
timeout --kill-after=5 "${HOST_LIMIT_S:-50}" node --import tsx bench/cuda/host-overhead.ts --device cuda --model "$B/model" \
  --adapters "$B/adapters" --concurrency 1,64 --overlap off,on > "$O/host-overhead.log" 2>&1
note "host-overhead: rc=$? ($(( $(date +%s) - s )) s)"
grep '^host-overhead' "$O/host-overhead.log" | tee -a "$O/summary.txt"
