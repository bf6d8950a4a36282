#!/usr/bin/env bash
# Session 17, last check: the GPU test files that the final call's time box did not reach, plus the parity / graphs /
# PDL files, on the final main (addon built on all cores, 1B reference in parallel). usage: bash .devo/part4.sh <budget s> "<files>"
source .device-carry/prelude.sh
R=$OUT/r4; mkdir -p $R
OUT=$R PACK=0 BUDGET_S=$1 GPU_TESTS="$2" GPU_TESTS_LIMIT_S=${GPU_TESTS_LIMIT_S:-180} bash scripts/device/gpu-suite.sh > $R/suite-stdout.log 2>&1
echo "suite rc=$?" >> $R/suite-stdout.log
gzip -f $R/gpu/gpu-tests.log 2>/dev/null
tar -C $OUT -czf $OUT/r4.tgz r4 && cp $R/gpu/summary.txt $R/gpu/gpu-tests-summary.txt $OUT/ 2>/dev/null; rm -rf $R
