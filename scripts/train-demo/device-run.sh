#!/usr/bin/env bash
# The GPU run (device tool, one H200): trains both base variants and all adapters, exports, evaluates, and
# leaves tarballs under $OUT. Usage: bash scripts/train-demo/device-run.sh BASE_SECONDS ADAPTER_SECONDS
set -o pipefail
export PYTHONUNBUFFERED=1
BASE_S=${1:-75}
ADAPTER_S=${2:-170}
W=/tmp/demo-work
OUT=${OUT:-/tmp/demo-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)' | tee -a "$OUT/gpu.txt"
python3 "$(dirname "$0")/run_all.py" --work "$W" --base-seconds "$BASE_S" --adapter-seconds "$ADAPTER_S" 2>&1 \
  | grep -v -e 'Loading weights' -e 'Writing model shards' | tee "$OUT/run.log"
for v in pure prefixed; do
  [ -d "$W/export-$v" ] && (cd "$W" && tar -cf "$OUT/export-$v.tar" "export-$v" "base-$v/train_log.json" "adapters-$v"/*/train_log.json)
done
cp "$W/results.json" "$W/train.log" "$OUT/" 2>/dev/null
ls -la "$OUT"
