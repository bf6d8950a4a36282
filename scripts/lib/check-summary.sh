# Sourced by the packaging checks (scripts/arm64-prebuild-check.sh, scripts/device/cuda-prebuild-check.sh): a
# summary.txt of PASS / FAIL lines ending in a result line, written as the checks run so that a run cut off by a
# time limit still says how far it got. Before sourcing set R (the output folder) and W (a scratch folder, removed
# at exit); a server started in SERVER_PID is stopped at exit. Set completed=1 after the last check: an exit before
# that counts as a failed check. The script's exit status is 1 when any check failed.
T0=${T0:-$(date +%s)}
failures=0
checks=0
: > "$R/summary.txt"
note() { echo "$1" | tee -a "$R/summary.txt"; }
check() {  # check NAME STATUS DETAIL (STATUS 0 = pass)
  checks=$((checks + 1))
  if [[ $2 == 0 ]]; then note "PASS $1: $3"; else failures=$((failures + 1)); note "FAIL $1: $3"; fi
}
finish() {
  [[ ${completed:-0} == 1 ]] || { checks=$((checks + 1)); failures=$((failures + 1)); note "FAIL stopped early (exit status $1 before the last check)"; }
  [[ -n ${SERVER_PID:-} ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  note "result: $([[ $failures == 0 ]] && echo PASS || echo FAIL) ($((checks - failures))/$checks checks, $(( $(date +%s) - T0 )) s)"
  rm -rf "$W"
  exit $(( failures > 0 ))
}
trap 'finish $?' EXIT

# wait_listening LOG PID MAX_S: prints the URL `tslora serve` reports in LOG, or nothing when PID exits or MAX_S pass.
wait_listening() {
  local url
  for _ in $(seq 1 "$3"); do
    url=$(grep -o 'listening on [^ ]*' "$1" | head -1 | cut -d' ' -f3)
    [[ -n $url ]] && { echo "$url"; return 0; }
    kill -0 "$2" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}
