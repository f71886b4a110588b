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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts Debian's docker-registry on a free loopback port, storing in $1/registry; sets
# registry_addr and registry_pid, and returns once it answers.
start_docker_registry() {
  local dir=$1
  registry_addr="127.0.0.1:$(free_port)"
  cat > "$dir/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: $registry_addr
YML
  docker-registry serve "$dir/registry.yml" >/dev/null 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do curl -sf "http://$registry_addr/v2/" >/dev/null && break; sleep 0.1; done
}
