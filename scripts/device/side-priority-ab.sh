#!/usr/bin/env bash
# A gpu-suite extra (SUITE_EXTRA_SCRIPTS; runs after the build and the bandwidth, before the GPU tests): the 8B A/Bs
# in one process each (bench/cuda/side-expand-ab.ts), on the model step-targets-synth.sh writes in the background.
#   1. TSLORA_CUDA_LORA_SIDE_PRIORITY=1 / =0 / the side expand off, batches AB_BATCHES (1,2,64): decides the priority's
#      default (native/src/cuda/engine/lora-overlap.h); AB1_VARIANTS / AB1_NAME replace it (e.g. a later default's A/B);
#   2. with AB2_VARIANTS: a second A/B at AB2_BATCHES (8,16), e.g. the graph buckets of 3-16 rows on the tiled LoRA
#      kernels (default) against the small-step pair with the side expand (TSLORA_CUDA_LORA_SMALL_STEP=1).
# Writes $AB_OUT/ab-<name>.{log,json} and one line per A/B to $AB_OUT/combo.log.
R=${AB_OUT:?AB_OUT: the directory gpu-suite writes gpu/ into}; B8=/tmp/tslora-bench-8b; T0=$(date +%s)
for _ in $(seq 1 60); do grep -q '^synth 8b rc=0' "$R/gpu/synth.log" 2>/dev/null && break; sleep 1; done
ab() { # name batches variants
  node --import tsx bench/cuda/side-expand-ab.ts --model $B8/model --adapters $B8/adapters --backend csgmv \
    --cuda-graph-max-bs 128 --batches "$2" --rounds "${AB_ROUNDS:-5}" --steps 10 --variants "$3" --markdown \
    --json "$R/ab-$1.json" > "$R/ab-$1.log" 2>&1
  echo "ab $1 rc=$? at $(( $(date +%s) - T0 )) s" >> "$R/combo.log"
}
ab "${AB1_NAME:-priority}" "${AB_BATCHES:-1,2,64}" \
  "${AB1_VARIANTS:-prio:TSLORA_CUDA_LORA_SIDE_PRIORITY=1;noprio:TSLORA_CUDA_LORA_SIDE_PRIORITY=0;sidexoff:TSLORA_CUDA_LORA_SIDE_EXPAND=0}"
[[ -n ${AB2_VARIANTS:-} ]] && ab second "${AB2_BATCHES:-8,16}" "$AB2_VARIANTS"
exit 0
