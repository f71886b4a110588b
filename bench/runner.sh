#!/usr/bin/env bash
# The runner's environment engine against plain runc, in one run on this machine (as root):
#   create→running, warm   Engine::start() until the init process runs, image already unpacked
#                          (uid slot, ID-mapped mount, overlay, tmpfs, secrets, spec, runc run -d)
#   create→running, cold   the same from an empty data dir: resolve, download, verify, unpack, start
#   baseline               `runc run -d` of the same unpacked rootfs, read-only, no overlay, no
#                          user namespace, same init and cgroup limits
#   capacity               environments one runner holds at once: 4 threads start them until
#                          MAX (default 400), a failure, or less than 10% of memory available;
#                          each is then checked with an exec, and all are deleted
# Usage: bench/runner.sh      Env: RUNS (warm/baseline samples, default 30), COLD_RUNS (default 5),
#                               MAX (default 400), BENCH_DIR (kept if given), CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-30}
cold_runs=${COLD_RUNS:-5}
max=${MAX:-400}
[[ $(id -u) -eq 0 ]] || { echo "run as root: environments need namespaces, mounts and cgroups" >&2; exit 1; }
for tool in runc docker-registry skopeo busybox; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install ${tool/busybox/busybox-static}" >&2; exit 1; }
done

echo "building (release) ..." >&2
(cd "$here" && cargo build --release --quiet -p airlock-runner --example engine_perf)
perf=${CARGO_TARGET_DIR:-$here/target}/release/examples/engine_perf

work=${BENCH_DIR:-$(mktemp -d -t airlock-runner-bench.XXXXXX)}
chmod 711 "$work" # environments (unprivileged uids) pass through it to their roots
registry_pid=""
cleanup() {
  [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null
  # Whatever a failed run left: containers, then mounts, then files.
  for root in "$work"/data/runc "$work"/data/baseline-runc; do
    [[ -d "$root" ]] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true; done
  done
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  for d in /sys/fs/cgroup/*/airlock-baseline /sys/fs/cgroup/airlock-baseline; do [[ -d "$d" ]] && rmdir "$d" 2>/dev/null; done
  [[ -z "${BENCH_DIR:-}" ]] && rm -rf "$work"
  true
}
trap cleanup EXIT

source "$here/bench/common.sh"
start_docker_registry "$work"
addr=$registry_addr
"$perf" layout "$work/layout"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:1" "docker://$addr/devcontainers/bench:1"
image="$addr/devcontainers/bench:1"

# Each step prints one RESULT line; a failing step stops the script (pipefail).
echo "warm starts ($runs) ..." >&2
warm=$("$perf" warm --data "$work/data" --image "$image" --plain-http "$addr" --runs "$runs" | grep '^RESULT')
echo "baseline runc run -d ($runs) ..." >&2
base=$("$perf" baseline --data "$work/data" --runs "$runs" | grep '^RESULT')
echo "cold starts ($cold_runs) ..." >&2
cold=$("$perf" cold --data "$work/cold" --image "$image" --plain-http "$addr" --runs "$cold_runs" | grep '^RESULT')
echo "capacity ramp to $max ..." >&2
ramp=$("$perf" ramp --data "$work/ramp" --image "$image" --plain-http "$addr" --max "$max" | grep '^RESULT')
read -r _ _ warm_p50 warm_p95 _ <<<"$warm"
read -r _ _ base_p50 base_p95 _ <<<"$base"
read -r _ _ cold_p50 cold_p95 _ <<<"$cold"
read -r _ _ held ramp_s delete_s mem_mib cgroup_mib exec_failed _ <<<"${ramp%%|*}"
why=${ramp#*| }

cat <<REPORT
runner engine vs runc on $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(runc --version | head -1)
                                    p50 ms     p95 ms     ratio p50 (ours/baseline)
create→running, warm cache ($runs)    $(printf '%-10s %-10s' "$warm_p50" "$warm_p95") $(ratio "$warm_p50" "$base_p50")
create→running, cold cache ($cold_runs)     $(printf '%-10s %-10s' "$cold_p50" "$cold_p95") $(ratio "$cold_p50" "$base_p50")
baseline: runc run -d ($runs)         $(printf '%-10s %-10s' "$base_p50" "$base_p95") (same rootfs read-only, no overlay, no userns)
capacity: $held environments held at once (started in ${ramp_s}s by 4 threads, deleted in ${delete_s}s)
          stopped because: $why
          memory: MemAvailable fell by $mem_mib MiB (cgroups charged $cgroup_mib MiB); exec checks failed: $exec_failed
REPORT
