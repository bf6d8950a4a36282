#!/usr/bin/env bash
# this build (wip/cpulora) vs main ab4baa8 (before the fused expand), alternating processes, this VM
O=/tmp/cpulora/vm
{ date -u; git -C /work/wt/cpulora log --oneline -1; lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200; } > $O/run.txt
for round in 1 2 3 4; do
  for who in this baseline; do
    dir=/work/wt/cpulora; [ $who = baseline ] && dir=/tmp/cpulora-baseline
    echo "== $who round $round, $(uptime | sed 's/.*load/load/')" >> $O/run.txt
    ( cd $dir && node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 40 --read-rate-steps 4 --batch8-rounds 10 --prefill-rounds 0 --dir /tmp/cpulora-bench --out $O/$who-$round.json 2>&1 | grep -E "^(machine|batch 1|LoRA)" >> $O/run.txt )
  done
done
echo "== end $(date -u) $(uptime | sed 's/.*load/load/')" >> $O/run.txt
