#!/usr/bin/env bash
# Prepares .device-carry/ for a GPU-machine call (../shared/device/pack: Node, npm, headers, node_modules) with a lean
# node_modules (the device runs the build, test/gpu and the benches: no e2e-only packages such as kubernetes-models or
# openai, no source maps), then checks that the working tree plus the carried paths fit the device tool's 64 MiB.
# Usage, from the repository root: bash scripts/device/pack-carry.sh [extra carried path ...]
# Keep committed results small (gzip raw JSON / logs over ~100 KB): the tracked tree travels with every call.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
../shared/device/pack --no-modules > /dev/null
# Also left out: documentation, bintrees' test data and zod's TypeScript sources (its package runs from v3 / v4).
tar --exclude='node_modules/.cache' --exclude='node_modules/kubernetes-models' --exclude='node_modules/openai' \
  --exclude='node_modules/bintrees/test' --exclude='node_modules/zod/src' --exclude='*.md' \
  --exclude='*.map' -cJf .device-carry/node_modules.tar.xz node_modules
# What the device tool copies: tracked files and untracked files git does not ignore, plus the carried paths.
treeBytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
carryBytes=$(du -sb .device-carry "$@" | awk '{s+=$1} END {print s}')
limitBytes=$((64 * 1024 * 1024))
total=$((treeBytes + carryBytes))
printf 'tree %.1f MiB + carry %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
  "$(echo "$treeBytes / 1048576" | bc -l)" "$(echo "$carryBytes / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
if (( total > limitBytes )); then
  echo "over the device tool's carry limit: gzip large committed results or carry less" >&2
  exit 1
fi
