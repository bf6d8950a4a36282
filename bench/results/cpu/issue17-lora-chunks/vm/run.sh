#!/usr/bin/env bash
# How vm/ was measured (2-vCPU AMD EPYC Zen 3 VM, 2 threads pinned to CPUs 0-1, load ~2): this build (wip/cpur16
# with the candidate defaults: GEMM chunks chosen from the expand's bytes; no AVX-512 here, so the 8-lane expand) and
# main a195ff7 (this session's base, built in /tmp/cpur16-baseline with this decode.ts) in alternating processes,
# then one lora-profile.ts run of this build.
for i in 1 2 3 4 5; do
  for who in this baseline; do
    d=$PWD; [ $who = baseline ] && d=/tmp/cpur16-baseline
    echo "$who $i load $(cut -d' ' -f1-3 /proc/loadavg)" >> vm/run.txt
    (cd $d && timeout 60 taskset -c 0,1 node --import tsx bench/native/decode.ts --preset 125m --lora-pool-dtype bf16 --steps 30 \
      --read-rate-steps 4 --batch8-rounds 0 --prefill-rounds 0 --dir /tmp/tslora-bench-native --out vm/$who-$i.json 2>&1 | grep -E "^(batch 1|LoRA)" >> vm/run.txt)
  done
  [ $i = 3 ] && taskset -c 0,1 node --import tsx bench/native/lora-profile.ts --steps 24 --min-chunk-kib 8,32 --out vm/profile-1.json >> vm/profile-1.txt
done
