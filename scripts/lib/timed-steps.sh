# Time-boxed steps for the device scripts (sourced by scripts/device/{gpu-suite,adapter-path-suite,sidex-round}.sh and
# bench/cuda/step64-round.sh; one GPU call has a hard wall-clock limit, so every step is cut to
# what is left and the script still reports). Set before calling (read at every call):
#   STEPS_BUDGET_S   seconds the script may take, counted from STEPS_T0 (date +%s)
#   STEPS_LOG_DIR    where each step's log goes;  STEPS_SUMMARY  the file a line per step is appended to (and echoed)
#   STEPS_RESERVE_S  seconds kept back from every step's limit (default 0);  STEPS_MIN_S  the least a step is started
#                    with (default 10);  STEPS_KILL_S  SIGKILL this long after the limit's SIGTERM (default 5)
#   STEPS_TAG        a prefix of every summary line with the seconds since STEPS_T0, e.g. "b64" → "[b64 12 s] …"
summary() {
  local line=$1
  [[ -n ${STEPS_TAG:-} ]] && line="[$STEPS_TAG $(( $(date +%s) - STEPS_T0 )) s] $line"
  echo "$line" | tee -a "$STEPS_SUMMARY"
}
# Seconds left of the budget (may be negative).
left() { echo $(( STEPS_BUDGET_S - ($(date +%s) - STEPS_T0) )); }
# step NAME LIMIT_S LOG CMD...: runs CMD under min(LIMIT_S, what is left − STEPS_RESERVE_S) seconds with its output in
# STEPS_LOG_DIR/LOG, records "NAME: rc=… (… s, limit … s)" and returns CMD's status (124 / 137: cut by the limit);
# skipped with a line and status 1 when less than STEPS_MIN_S would be left.
step() {
  local name=$1 limit=$2 log=$3; shift 3
  local rem; rem=$(( $(left) - ${STEPS_RESERVE_S:-0} ))
  if (( rem < ${STEPS_MIN_S:-10} )); then summary "$name: SKIPPED (budget spent)"; return 1; fi
  (( limit > rem )) && limit=$rem
  local s; s=$(date +%s)
  timeout --kill-after="${STEPS_KILL_S:-5}" "$limit" "$@" > "$STEPS_LOG_DIR/$log" 2>&1
  local rc=$?
  summary "$name: rc=$rc ($(( $(date +%s) - s )) s, limit $limit s)"
  return $rc
}
