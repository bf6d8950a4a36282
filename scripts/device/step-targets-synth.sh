# The synthetic models of scripts/device/step-targets.sh, written in the background while the addon builds (needs
# dist/ from tsc): Llama-3.1-8B (32 layers, 16 GB) and Llama-3.2-1B, each with 8 r16 adapters on all modules.
# Writes a line "synth <name> rc=N" per model, which step-targets.sh checks.
for spec in "8b llama-3.1-8b" "1b llama-3.2-1b"; do
  set -- $spec
  dir=/tmp/tslora-bench-$1
  rm -rf "$dir"
  start=$(date +%s)
  node bin/tslora.js synth model --shape "$2" --out "$dir/model" &&
    node bin/tslora.js synth adapters --model "$dir/model" --count 8 --rank 16 --targets all --out "$dir/adapters"
  echo "synth $1 rc=$? ($(( $(date +%s) - start )) s)"
done
