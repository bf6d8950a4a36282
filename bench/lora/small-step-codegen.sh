#!/usr/bin/env bash
# Code generation of the small-step LoRA kernels (lora_small_shrink.cu, lora_small_expand.cu) in this tree against a git
# ref: ptxas registers and spill bytes per kernel, and with cuobjdump on PATH (the device image; not on the development
# machine) the SASS instructions per kernel. Same nvcc flags as bench/lora/device-run.sh (sm_90a). Needs nvcc only, no
# GPU. A change that only deletes code can still move these (session 17: the expand lost 3-4 us per layer that way;
# bench/lora/README.md, small-step code generation), so compare after touching these kernels or their headers.
# Usage (repo root): bash bench/lora/small-step-codegen.sh REF [OUT_DIR]   e.g. REF = main, 5d7caa8
set -eu
ref=${1:?usage: small-step-codegen.sh REF [OUT_DIR]}
out=${2:-$(mktemp -d /tmp/small-step-codegen.XXXXXX)}
mkdir -p "$out/ref" "$out/tree"
git archive "$ref" native/include native/src/cuda native/src/lora | tar -x -C "$out/ref"
INC="-Inative/include -Inative/src/lora -Inative/src/lora/test -Inative/src/cuda -Inative/src/cuda/test"
compile() {  # compile ROOT DIR FILE
  (cd "$1" && nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a $INC -diag-suppress 128 -Xptxas -v -c \
    "native/src/cuda/$3.cu" -o "$2/$3.o" > "$2/$3.log" 2>&1)
}
for k in lora_small_shrink lora_small_expand; do
  compile "$out/ref" "$out/ref" $k &
  compile "$PWD" "$out/tree" $k &
done
wait
# ptxas's report, one line per kernel: template arguments, registers, spill stores / loads (bytes)
table() {  # table LOG
  awk '/Compiling entry function/ { match($0, /small(Shrink|Expand)KernelI(6__half|13__nv_bfloat16)(L[ib][0-9]+E)+/); name = substr($0, RSTART, RLENGTH) }
       /spill stores/ { st = $5; ld = $9 }
       /Used [0-9]+ registers/ { for (i = 1; i <= NF; ++i) if ($(i + 1) == "registers,") regs = $i; print name, regs, st "/" ld }' "$1" | sort
}
for k in lora_small_shrink lora_small_expand; do
  echo "== $k: kernel | $ref: registers, spill stores/loads | this tree"
  join -a1 -a2 <(table "$out/ref/$k.log") <(table "$out/tree/$k.log") | column -t
  if command -v cuobjdump > /dev/null; then
    echo "-- SASS instructions per kernel ($ref | this tree)"
    count() { cuobjdump -sass "$1" | awk '/Function :/ { if (f) print f, n; match($0, /small(Shrink|Expand)KernelI(6__half|13__nv_bfloat16)(L[ib][0-9]+E)+/); f = substr($0, RSTART, RLENGTH); n = 0 }
                                          /\/\*[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]*\*\/ +[@A-Z]/ { n++ } END { if (f) print f, n }' | sort; }
    join -a1 -a2 <(count "$out/ref/$k.o") <(count "$out/tree/$k.o") | column -t
  fi
done
echo "(objects and ptxas logs in $out)"
