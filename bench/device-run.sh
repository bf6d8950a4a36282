#!/usr/bin/env bash
# Runs the two GPU bench experiments of issue #7 on the GPU machine, against the CUDA backend:
#   bench-configs/triton-vs-csgmv-h200.json   (spec g.1: triton vs csgmv at concurrency 1, 16, 64, 128)
#   bench-configs/overlap-loading-h200.json   (spec g.2: overlap loading off vs on, churn and counter-case)
# Both are sized to finish in about 4 minutes on one H200 (16 cores), synthesis and server start-ups included.
#
# Usage, from the repository root on the device (Node carried in .device-carry/, see shared/device/README.md):
#   source .device-carry/prelude.sh && bash bench/device-run.sh
# Produces, per config, <config>/{results.json, report.md, the SVG charts, the server logs, bench.log}, plus
# device-run.log (phases and timings), machine.txt (nvidia-smi, CPU, Node) and ratios.md (csgmv/triton and on/off
# ratios from the results). The device tool brings back at most 8 files from $OUT, so by default all of that is
# written to $TSLORA_BENCH_STAGE and packed into "$OUT/bench/bench-results.tar.gz", with ratios.md and
# device-run.log and machine.txt also copied loose into "$OUT/bench/" (4 files). TSLORA_BENCH_LOOSE=1 writes the tree directly
# under "$OUT/bench/" instead (about 30 files).
#
# Environment:
#   OUT                        output root (default: bench-out/device)
#   TSLORA_BENCH_ROUNDS        rounds per config (default 2; the second config drops to 1 when the first one used
#                              more than 55 % of TSLORA_BENCH_BUDGET_S)
#   TSLORA_BENCH_BUDGET_S      wall-time budget for both configs, seconds (default 240)
#   TSLORA_BENCH_CONFIGS       configs to run (default: "triton-vs-csgmv-h200 overlap-loading-h200")
#   TSLORA_GIT_COMMIT          commit to record when the checkout has no .git (results.json environment)
#   TSLORA_BENCH_STAGE         where the tree is written before packing (default /tmp/tslora-bench-device)
#   TSLORA_BENCH_LOOSE=1       write the tree under "$OUT/bench/" and pack nothing
#   TSLORA_BENCH_CPU_STANDIN=1 check this script without a GPU: the configs are rewritten to the CPU backend, a
#                              tiny synthetic model and a few requests per level (the numbers mean nothing)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/bench-out/device}"
ROUNDS="${TSLORA_BENCH_ROUNDS:-2}"
BUDGET_S="${TSLORA_BENCH_BUDGET_S:-240}"
CONFIGS="${TSLORA_BENCH_CONFIGS:-triton-vs-csgmv-h200 overlap-loading-h200}"
STANDIN="${TSLORA_BENCH_CPU_STANDIN:-0}"
if [ "${TSLORA_BENCH_LOOSE:-0}" = "1" ]; then
  BENCH_OUT="$OUT/bench"
else
  BENCH_OUT="${TSLORA_BENCH_STAGE:-/tmp/tslora-bench-device}/bench"
  rm -rf "$BENCH_OUT"
fi
mkdir -p "$BENCH_OUT" "$OUT/bench"
LOG="$BENCH_OUT/device-run.log"
: > "$LOG"
log() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$LOG" >&2; }

log "device-run: configs '$CONFIGS', rounds $ROUNDS, budget ${BUDGET_S}s, cpu stand-in $STANDIN, out $BENCH_OUT"
if [ -z "${TSLORA_GIT_COMMIT:-}" ]; then
  TSLORA_GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || true)"
  export TSLORA_GIT_COMMIT
fi
{
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# commit: ${TSLORA_GIT_COMMIT:-unknown}"
  echo "# nvidia-smi"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"
  echo "# nvidia-smi --query-gpu"
  nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max,clocks.max.sm --format=csv 2>&1 || true
  echo "# nvcc"; nvcc --version 2>&1 | tail -2 || true
  echo "# cpu"; (lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)|Socket' ) || nproc
  echo "# memory"; free -g 2>/dev/null || true
  echo "# node $(node --version)"
} > "$BENCH_OUT/machine.txt" 2>&1

# --- build: TypeScript (dist/) and the native addons (build-native skips what is up to date) ---
log "tsc"
npx tsc -p tsconfig.json >> "$LOG" 2>&1 || log "tsc reported type errors (dist is emitted anyway; see above)"
if [ ! -f dist/cli/main.js ]; then log "FATAL: dist/cli/main.js missing after tsc"; exit 1; fi
# build-cuda-addon.mjs recompiles every time (minutes): keep the addons a suite earlier in this call has built
if [ "$STANDIN" = "1" ] || [ ! -f build-cuda/Release/tslora_cuda.node ] || [ ! -f build/Release/tslora_cpu.node ]; then
  log "native addons (node scripts/build-native.mjs)"
  TSLORA_BUILD_JOBS="${TSLORA_BUILD_JOBS:-$(nproc)}" node scripts/build-native.mjs >> "$LOG" 2>&1 || log "build-native failed (see above)"
else
  log "native addons already built (build/Release/tslora_cpu.node, build-cuda/Release/tslora_cuda.node): not rebuilding"
fi
if [ "$STANDIN" != "1" ] && [ ! -f build-cuda/Release/tslora_cuda.node ]; then
  log "FATAL: build-cuda/Release/tslora_cuda.node is missing: the CUDA addon did not build (see above)"
  exit 1
fi

# --- the CPU stand-in rewrites the configs: same structure, CPU backend, tiny model, a few requests ---
config_path() {
  local name="$1"
  if [ "$STANDIN" != "1" ]; then echo "bench-configs/$name.json"; return; fi
  mkdir -p "$BENCH_OUT/standin-configs"
  node -e '
    const fs = require("fs");
    const [src, dst] = process.argv.slice(1);
    const c = JSON.parse(fs.readFileSync(src, "utf8"));
    c.model = { synthetic: { shape: "tiny" } };
    c.serverFlags = { ...c.serverFlags, device: "cpu", "num-threads": 2, "context-length": 512 };
    c.workload = { ...c.workload, warmupRequests: 1 };
    for (const w of [c.workload, ...(c.levels ?? []).map((level) => level.workload)]) {
      if (w !== c.workload) w.requests = Math.min(w.requests ?? 4, w.arrival?.type === "closed" ? w.arrival.concurrency + 2 : 4);
      if (w !== c.workload) w.durationS = 5;
      if (w.inputTokens?.type === "fixed") w.inputTokens.value = Math.min(w.inputTokens.value, 64);
      if (w.outputTokens?.type === "fixed") w.outputTokens.value = Math.min(w.outputTokens.value, 4);
      if (w.arrival?.type === "closed") w.arrival.concurrency = Math.min(w.arrival.concurrency, 4);
    }
    c.description = "CPU STAND-IN (numbers meaningless): " + (c.description ?? "");
    fs.writeFileSync(dst, JSON.stringify(c, null, 2));
  ' "bench-configs/$name.json" "$BENCH_OUT/standin-configs/$name.json"
  echo "$BENCH_OUT/standin-configs/$name.json"
}

# --- the ratios the README needs, from whatever results exist; packed after every config, so that a call cut off
# during the second config still brings the first one back ---
write_ratios() {
  node --input-type=module -e '
    import { readFileSync, existsSync, writeFileSync } from "node:fs";
    import { metricValue } from "./dist/bench/metrics/summarize.js";
    const [benchOut, ...names] = process.argv.slice(1);
    const metrics = ["ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "e2e_p50", "e2e_p99", "output_tok_s", "adapter_loads", "errors"];
    const fmt = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "n/a" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
    const lines = [];
    for (const name of names) {
      const path = `${benchOut}/${name}/results.json`;
      if (!existsSync(path)) { lines.push(`## ${name}: no results.json`, ""); continue; }
      const r = JSON.parse(readFileSync(path, "utf8"));
      const variants = [...new Set(r.summaries.map((s) => s.variant))];
      const levels = [...new Set(r.summaries.map((s) => s.level))];
      const [a, b] = variants;
      lines.push(`## ${name}: ${b} / ${a}`, "", `GPUs: ${(r.environment.gpus ?? []).join("; ") || "none"}; CPU: ${r.environment.cpu} (${r.environment.cpuCores} cores); commit ${r.environment.gitCommit ?? "unknown"}`, "");
      lines.push(`| level | metric | ${a} | ${b} | ${b} / ${a} |`, "|---|---|---:|---:|---:|");
      for (const level of levels) {
        const sa = r.summaries.find((s) => s.variant === a && s.level === level);
        const sb = r.summaries.find((s) => s.variant === b && s.level === level);
        if (!sa || !sb) continue;
        for (const m of metrics) {
          const va = metricValue(sa, m), vb = metricValue(sb, m);
          lines.push(`| ${level ?? "all"} | ${m} | ${fmt(va)} | ${fmt(vb)} | ${va ? fmt(vb / va) : "n/a"} |`);
        }
      }
      lines.push("");
    }
    writeFileSync(`${benchOut}/ratios.md`, lines.join("\n"));
  ' "$BENCH_OUT" $CONFIGS 2>> "$LOG" || log "ratios.md failed"
}
pack() {
  write_ratios
  if [ "$BENCH_OUT" != "$OUT/bench" ]; then
    cp "$BENCH_OUT/ratios.md" "$BENCH_OUT/machine.txt" "$LOG" "$OUT/bench/" 2>/dev/null
    tar -czf "$OUT/bench/bench-results.tar.gz.part" -C "$(dirname "$BENCH_OUT")" bench && mv "$OUT/bench/bench-results.tar.gz.part" "$OUT/bench/bench-results.tar.gz"
  fi
}

status=0
BENCH_T0=$SECONDS   # the budget covers the bench runs (synthesis and server start-ups included), not the builds
for name in $CONFIGS; do
  rounds="$ROUNDS"
  used=$((SECONDS - BENCH_T0))
  if [ "$name" != "${CONFIGS%% *}" ] && [ "$rounds" -gt 1 ] && [ "$used" -gt $((BUDGET_S * 55 / 100)) ]; then
    rounds=1
    log "$name: ${used}s used of ${BUDGET_S}s, running 1 round instead of $ROUNDS"
  fi
  dir="$BENCH_OUT/$name"
  mkdir -p "$dir"
  cfg="$(config_path "$name")"
  # a hung run must not hold the machine: all configs end by 1.25 x the budget (a config cut off loses its results)
  limit=$(( BUDGET_S * 5 / 4 - (SECONDS - BENCH_T0) ))
  if [ "$limit" -lt 30 ]; then limit=30; fi
  log "$name: tslora bench $cfg --json --rounds $rounds (limit ${limit}s)"
  started=$SECONDS
  timeout -k 15 "$limit" node bin/tslora.js bench "$cfg" --json --rounds "$rounds" --out "$dir" --startup-timeout 180 \
    > "$dir/results-stdout.json" 2> "$dir/bench.log"
  rc=$?
  log "$name: exit $rc after $((SECONDS - started))s"
  # the same JSON as results.json; keep it only when results.json is missing
  if [ -f "$dir/results.json" ]; then rm -f "$dir/results-stdout.json"; fi
  if [ "$rc" -ne 0 ]; then status=$rc; tail -20 "$dir/bench.log" | sed 's/^/    /' | tee -a "$LOG" >&2; fi
  pack
done

log "device-run: done (status $status); $([ "$BENCH_OUT" != "$OUT/bench" ] && echo "packed into $OUT/bench/bench-results.tar.gz" || echo "outputs under $BENCH_OUT")"
[ "$BENCH_OUT" != "$OUT/bench" ] && cp "$LOG" "$OUT/bench/"
exit "$status"
