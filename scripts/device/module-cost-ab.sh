#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS, like side-priority-ab.sh): the LoRA cost of each target module alone on the
# 8B model, in ONE process (bench/cuda/side-expand-ab.ts): four pools, each targeting one module (qkv_proj, o_proj,
# gate_up_proj, down_proj) and filled with 8 r16 adapters of that module only (`tslora synth adapters --targets`),
# batches MODULE_AB_BATCHES (1,64). Where a whole-model LoRA step's cost goes (issue #12: the batch-1 shared row).
# Writes $AB_OUT/ab-modules.{log,json} and one line to $AB_OUT/combo.log. Four 8B copies: ~64 GB of GPU memory.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; B8=/tmp/tslora-bench-8b; T0=$(date +%s)
for _ in $(seq 1 60); do grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null && break; sleep 1; done
declare -A modules=([qkv]=q_proj,k_proj,v_proj [o]=o_proj [gateup]=gate_proj,up_proj [down]=down_proj)
declare -A targets=([qkv]=qkv_proj [o]=o_proj [gateup]=gate_up_proj [down]=down_proj)
spec=
for m in qkv o gateup down; do
  node bin/tslora.js synth adapters --model $B8/model --count 8 --rank 16 --targets "${modules[$m]}" \
    --out "$B8/adapters-$m" >> "$R/ab-modules-synth.log" 2>&1 || { echo "ab modules: synth $m failed" >> "$R/combo.log"; exit 0; }
  spec+="$m:@adapters=$B8/adapters-$m,@targets=${targets[$m]};"
done
node --import tsx bench/cuda/side-expand-ab.ts --model $B8/model --adapters $B8/adapters --backend csgmv \
  --cuda-graph-max-bs 128 --batches "${MODULE_AB_BATCHES:-1,64}" --rounds "${AB_ROUNDS:-5}" --steps 10 --variants "$spec" \
  --markdown --json "$R/ab-modules.json" > "$R/ab-modules.log" 2>&1
echo "ab modules rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
exit 0
