#!/usr/bin/env bash
# The AMD EPYC VM (Zen 3, 2 vCPUs): this build (wip/cpur64) vs main 5fb30d4 in alternating processes, then lora-profile.
O=/tmp/cpur64-vm; D=/tmp/cpur64-bench
for round in 1 2 3; do
  for who in this baseline; do
    dir=/work/wt/cpur64; [ $who = baseline ] && dir=/tmp/cpur64-baseline-local
    ( cd $dir && echo "load $(cut -d' ' -f1-3 /proc/loadavg)" > $O/$who-$round.txt && timeout 120 taskset -c 0,1 node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 36 --read-rate-steps 4 --batch8-rounds 0 --prefill-rounds 0 --dir $D --out $O/$who-$round.json >> $O/$who-$round.txt 2>&1 )
    echo "$who $round: $(grep -E '^(copy|batch 1|LoRA|load)' $O/$who-$round.txt | tr '\n' ' ')"
  done
done
for v in "TSLORA_GEMM_EPILOGUE_CHUNKS=4" "TSLORA_GEMM_EPILOGUE_CHUNKS=1" "TSLORA_GEMM_EPILOGUE_CHUNKS=2" "TSLORA_GEMM_EPILOGUE_CHUNKS=4"; do
  ( cd /work/wt/cpur64 && env $v timeout 60 taskset -c 0,1 node --import tsx bench/native/lora-profile.ts --steps 24 --dir $D --out "$O/profile-${v#*=}.json" > "$O/profile-${v#*=}.txt" 2>&1 )
  echo "profile $v: $(cut -d' ' -f1-3 /proc/loadavg) $(tr '\n' ' ' < "$O/profile-${v#*=}.txt")"
done
