# Helpers shared by the benchmark scripts (sourced, not run). Uses $runs.

# Median wall time in seconds of $runs runs of a shell command, after one warm-up run;
# the optional second command runs after each run, untimed.
time_cmd() {
  local cmd=$1 cleanup=${2:-true} times=()
  eval "$cmd" >/dev/null 2>&1; eval "$cleanup"
  for _ in $(seq "$runs"); do
    local start end
    # Earlier runs' dirty pages would otherwise be written back inside this one's timing.
    sync
    start=$(date +%s.%N); eval "$cmd" >/dev/null 2>&1; end=$(date +%s.%N)
    eval "$cleanup"
    times+=("$(awk "BEGIN { print $end - $start }")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
